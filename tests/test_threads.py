"""qinn_lib.threads: the block runs with the asked number of torch threads, and the previous
number comes back afterwards, also after an exception."""

import pytest
import torch

from qinn_lib.threads import torch_threads


def test_threads_are_set_inside_and_restored_after():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1 or None"):
        with torch_threads(bad):
            pass


def test_classifier_auc_leaves_the_thread_count_alone():
    import numpy as np

    from qinn_lib.evaluation.two_sample import classifier_auc

    rng = np.random.default_rng(0)
    truth = np.column_stack([rng.uniform(20, 80, 400), rng.uniform(20, 80, 400), rng.uniform(-3, 3, 400),
                             rng.uniform(-2, 2, 400), rng.uniform(-2, 2, 400)])
    before = torch.get_num_threads()
    classifier_auc(truth, truth[::-1].copy(), seed=1, epochs=1)
    assert torch.get_num_threads() == before


def test_notebook_kernels_run_on_one_thread_unless_told(monkeypatch):
    from qinn_lib.threads import THREADS_ENV, set_notebook_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(THREADS_ENV, raising=False)
        assert set_notebook_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(THREADS_ENV, "2")
        assert set_notebook_threads() == 2 and torch.get_num_threads() == 2
        for bad in ("0", "two"):
            monkeypatch.setenv(THREADS_ENV, bad)
            with pytest.raises(ValueError, match=f"{THREADS_ENV}={bad!r}: must be an integer >= 1"):
                set_notebook_threads()
    finally:
        torch.set_num_threads(before)


def test_native_thread_pools_are_limited_inside_and_restored_after():
    from threadpoolctl import threadpool_info

    from qinn_lib.threads import native_threads

    before = [p["num_threads"] for p in threadpool_info()]
    with native_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert [p["num_threads"] for p in threadpool_info()] == before
    with pytest.raises(ValueError, match="threads must be an integer >= 1 or None"):
        with native_threads(0):
            pass
