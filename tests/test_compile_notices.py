"""Known compile-time notices stay out of the user's output; everything else inductor says does not."""

from __future__ import annotations

import logging
import warnings

from qinn_lib import compiling


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_c_shim_fallback_notice_is_dropped_and_other_inductor_warnings_kept():
    logger = logging.getLogger("torch._inductor.ir")
    keep = _Keep()
    logger.addHandler(keep)
    try:
        compiling._quiet_known_compile_notices()
        compiling._quiet_known_compile_notices()  # idempotent: one filter
        logger.warning("aten._linalg_slogdet.default is missing a c-shim implementation, using proxy executor as fallback")
        logger.warning("something else went wrong")
    finally:
        logger.removeHandler(keep)
    assert keep.messages == ["something else went wrong"]
    assert sum(isinstance(f, compiling._DropCShimNotice) for f in logger.filters) == 1


def test_torchs_own_deprecation_notice_is_ignored_but_other_future_warnings_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiling._quiet_known_compile_notices()
        warnings.warn("`torch._prims_common.check` is deprecated and will be removed in the future.", FutureWarning)
        warnings.warn("another deprecation", FutureWarning)
    assert [str(w.message) for w in caught] == ["another deprecation"]
