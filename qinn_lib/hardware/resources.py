"""What running the QINN on a quantum computer would take: circuit resources and device cost.

:func:`circuit_resources` counts, for the three circuits of the paper (forward, Fig. 2; inverse =
ISP preparation and g_Q, Fig. 4, then U^dagger, eq. 13-15; the SWAP test of Fig. 3), the qubits,
gates, CNOTs and depth, as written (PennyLane ``qml.specs`` of the :mod:`qinn_lib.models.qinn.circuits` QNodes)
and after decomposing every gate into CNOTs and single-qubit gates (``qml.transforms.decompose``:
only the SWAP test's controlled SWAPs change), plus the trained and the event-dependent angles.

:func:`device_cost` turns a task into circuit executions on a device,
``executions = events x circuits per event x shots``:

- generating an event runs the inverse circuit once;
- the NLL of an event needs z (1 circuit) and its Jacobian by the parameter-shift rule (2 circuits
  per feature: :mod:`qinn_lib.hardware.shots`), 1 + 2n circuits;
- training needs the gradient of that NLL with respect to the circuit weights: a parameter shift
  of every one of the 1 + 2n circuits for each of the P weights of U, (1 + 2n)(1 + 2P) circuits
  per event. Counted for the NLL term alone, so it is a lower bound for one epoch.

Device hours follow from an assumed shot rate (a parameter: measured rates differ by orders of
magnitude between platforms), and :func:`time_exact_simulation` measures what the same tasks cost
our exact simulation.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Sequence

import torch

from qinn_lib.evaluation.evaluate import test_nll
from qinn_lib.hardware.shots import check_shots

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["ONE_QUBIT_AND_CNOT", "circuit_resources", "device_cost", "time_exact_simulation", "format_rows"]

#: Gate set of the decomposed counts: CNOT and single-qubit gates.
ONE_QUBIT_AND_CNOT = frozenset({"CNOT", "RX", "RY", "RZ", "Rot", "Hadamard", "T", "Adjoint(T)", "S",
                                "Adjoint(S)", "PhaseShift"})


def _specs(qnode, args, decompose: bool):
    import pennylane as qml

    if decompose:
        qnode = qml.transforms.decompose(qnode, gate_set=set(ONE_QUBIT_AND_CNOT))
    return qml.specs(qnode)(*args).resources


def circuit_resources(model: "QINN") -> list[dict[str, Any]]:
    """One row per circuit: ``circuit``, ``qubits``, ``gates``, ``cnots``, ``cswaps``, ``depth``
    (as written), ``cnots_decomposed``, ``depth_decomposed`` (CNOT + single-qubit gates),
    ``trained_angles`` (rotation angles of U and/or g_Q), ``event_angles`` (angles set per event:
    the encoding x' or the ISP angles psi = g_C(P)), ``measured`` (qubits read out)."""
    from qinn_lib.models.qinn import circuits  # deferred: PennyLane (~1.3 s to import)

    n = model.n_features
    with torch.no_grad():
        w = model.weights.detach().to(torch.float64).cpu()
        wi = model.isp_weights.detach().to(torch.float64).cpu()
    x = torch.full((n,), 0.5, dtype=torch.float64)  # any angles: the counts do not depend on them
    psi = torch.full((3 * n,), 0.5, dtype=torch.float64)
    specs = [
        ("forward (Fig. 2)", circuits.forward_qnode(n, model.n_layers), (x, w), w.numel(), n, n),
        ("inverse: ISP + U† (Fig. 4, eq. 13-15)", circuits.inverse_qnode(n, model.isp_layers, model.n_layers),
         (psi, wi, w), wi.numel() + w.numel(), 3 * n, n),
        ("SWAP test (Fig. 3)", circuits.swap_test_qnode(n, model.n_layers, model.isp_layers),
         (x, w, psi, wi), wi.numel() + w.numel(), n + 3 * n, 1),
    ]
    rows = []
    for name, qnode, args, trained, event, measured in specs:
        res, dec = _specs(qnode, args, False), _specs(qnode, args, True)
        types = dict(res.gate_types)
        rows.append({
            "circuit": name, "qubits": int(res.num_allocs), "gates": int(res.num_gates),
            "cnots": int(types.get("CNOT", 0)), "cswaps": int(types.get("CSWAP", 0)), "depth": int(res.depth),
            "cnots_decomposed": int(dict(dec.gate_types).get("CNOT", 0)), "depth_decomposed": int(dec.depth),
            "trained_angles": int(trained), "event_angles": int(event), "measured": int(measured),
        })
    return rows


def device_cost(n_qubits: int, n_weights: int, shots: Any, *, n_generate: int = 100_000, n_nll: int = 50_000,
                n_train: int = 37_500, shot_rate_hz: float = 1e3) -> list[dict[str, Any]]:
    """Circuit executions (= shots) of three tasks with ``shots`` per circuit.

    ``n_qubits`` = features n, ``n_weights`` = rotation angles P of the model circuit U. Rows:
    ``task``, ``events``, ``circuits_per_event``, ``circuits``, ``executions`` and ``device_hours``
    at ``shot_rate_hz`` executions per second (an assumption, see the module docstring).
    """
    n_shots = check_shots(shots)
    if not shot_rate_hz > 0:
        raise ValueError(f"shot_rate_hz must be > 0, got {shot_rate_hz!r}")
    per_event_nll = 1 + 2 * n_qubits
    tasks = [
        (f"generate {n_generate:,} events", n_generate, 1),
        (f"NLL of {n_nll:,} test events (z and J by parameter shift)", n_nll, per_event_nll),
        (f"one training epoch, {n_train:,} events: NLL gradient w.r.t. U only (lower bound)", n_train,
         per_event_nll * (1 + 2 * n_weights)),
    ]
    rows = []
    for task, events, per_event in tasks:
        circuits = events * per_event
        executions = circuits * n_shots
        rows.append({"task": task, "events": events, "circuits_per_event": per_event, "circuits": circuits,
                     "shots": n_shots, "executions": executions, "device_hours": executions / shot_rate_hz / 3600.0})
    return rows


def _min_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@torch.no_grad()
def time_exact_simulation(trained: Any, *, n_generate: int = 100_000, n_nll: int = 50_000,
                          repeats: int = 3) -> dict[str, float]:
    """Seconds (minimum of ``repeats``) our exact simulation takes to generate ``n_generate``
    events and to evaluate the NLL (exact Jacobian) of ``n_nll`` test events. The test split is
    tiled up to ``n_nll`` events when it is smaller (the cost does not depend on the values)."""
    test = trained.data.test
    tiled = SimpleNamespace(test=test.repeat(-(-n_nll // len(test)), 1)[:n_nll], scaler=trained.data.scaler)
    return {
        "generate_seconds": _min_time(lambda: trained.generate(n_generate, seed=0), repeats),
        "nll_seconds": _min_time(lambda: test_nll(trained.model, tiled), repeats),
        "n_generate": int(n_generate), "n_nll": int(n_nll), "repeats": int(repeats),
    }


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """Markdown table of ``rows`` (dicts) with the given columns; integers with thousands separators,
    floats with 3 significant digits, NaN (not measured) as a dash."""
    headers = list(headers or columns)

    def cell(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return str(v)
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            if v != v:
                return "–"  # not measured
            return f"{v:.3g}" if abs(v) < 1e6 else f"{v:.3e}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
