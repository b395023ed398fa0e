"""A synthetic MadGraph-like LHE sample of pp -> Z(-> l+ l-) j for tests: Breit-Wigner Z masses,
an exponential Z pT spectrum, flat Z rapidity, isotropic decays, one recoiling parton.
Not physics: just events with the right structure, written as a Les Houches file.

``python tests/lhe_sample.py OUT.lhe[.gz] N [SEED]`` writes one from the command line."""

from __future__ import annotations

import gzip
import math
import sys
from pathlib import Path

import numpy as np

#: Header of every test LHE file (tests/test_data.py's hand-made events too): 13 TeV pp, one
#: process of 750 pb.
HEAD = """<LesHouchesEvents version="3.0">
<header>
<!-- test file -->
</header>
<init>
2212 2212 6.5e+03 6.5e+03 0 0 247000 247000 -4 1
7.5e+02 2.0e+00 7.5e+02 1
</init>
"""
TAIL = "</LesHouchesEvents>\n"


def _line(pid: int, status: int, p: np.ndarray, m: float = 0.0) -> str:
    px, py, pz, e = (float(v) for v in p)
    return f" {pid} {status} 1 2 0 0 {px:.10e} {py:.10e} {pz:.10e} {e:.10e} {m:.4e} 0. 9.\n"


def _boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Lorentz boost of four-vector p = (px, py, pz, E) by velocity beta."""
    b2 = float(beta @ beta)
    if b2 == 0.0:
        return p
    gamma = 1.0 / math.sqrt(1.0 - b2)
    bp = float(beta @ p[:3])
    g2 = (gamma - 1.0) / b2
    space = p[:3] + (g2 * bp + gamma * p[3]) * beta
    return np.array([*space, gamma * (p[3] + bp)])


def events(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = 0.0
        while not 60.0 < m < 120.0:
            m = 91.19 + 0.5 * 2.50 * math.tan(math.pi * (rng.random() - 0.5))
        pt = rng.exponential(25.0) + 5.0
        phi = rng.uniform(0, 2 * math.pi)
        y = rng.uniform(-2.5, 2.5)
        mt = math.hypot(m, pt)
        z = np.array([pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(y), mt * math.cosh(y)])
        cos_t, phi_d = rng.uniform(-1, 1), rng.uniform(0, 2 * math.pi)
        sin_t = math.sqrt(1 - cos_t ** 2)
        k = 0.5 * m
        lp = np.array([k * sin_t * math.cos(phi_d), k * sin_t * math.sin(phi_d), k * cos_t, k])
        lm = np.array([-lp[0], -lp[1], -lp[2], k])
        beta = z[:3] / z[3]
        lp, lm = _boost(lp, beta), _boost(lm, beta)
        jet_pz = rng.normal(0, 50.0)
        jet = np.array([-z[0], -z[1], jet_pz, math.sqrt(pt * pt + jet_pz * jet_pz)])
        flavour = 11 if rng.random() < 0.5 else 13
        beams = [np.array([0, 0, 300.0, 300.0]), np.array([0, 0, -300.0, 300.0])]
        lines = [_line(21, -1, beams[0]), _line(2, -1, beams[1]), _line(23, 2, z, m),
                 _line(-flavour, 1, lp), _line(flavour, 1, lm), _line(2, 1, jet)]
        out.append(f"<event>\n {len(lines)} 1 1.0 91.19 7.5e-03 1.2e-01\n" + "".join(lines) + "</event>\n")
    return out


def write(path: str | Path, n: int, seed: int = 1) -> Path:
    """Write ``n`` events to ``path`` (gzipped if it ends in ``.gz``)."""
    path = Path(path)
    text = HEAD + "".join(events(n, seed)) + TAIL
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


if __name__ == "__main__":
    write(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
