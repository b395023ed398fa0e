"""The INN sizes of Table 1 as plain data, importable without torch or FrEIA (run configurations
validate ``size`` against it; :class:`~qinn_lib.models.inn.model.INN` builds from it)."""

from __future__ import annotations

#: Table 1, INN column: spline bins / coupling blocks / layers per subnet / hidden width per size.
INN_SIZES: dict[str, dict[str, int]] = {
    "2k": {"bins": 5, "blocks": 6, "subnet_layers": 3, "hidden": 8},
    "6k": {"bins": 8, "blocks": 9, "subnet_layers": 3, "hidden": 12},
    "16k": {"bins": 8, "blocks": 10, "subnet_layers": 3, "hidden": 24},
}
