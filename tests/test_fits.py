"""The Breit–Wigner fit recovers a known mass and width."""

import numpy as np
import pytest

from qinn_lib.events.fits import fit_breit_wigner, relativistic_breit_wigner


def _sample_bw(mass, width, n, seed):
    """Rejection-sample the exact fit shape on [70, 110] GeV."""
    rng = np.random.default_rng(seed)
    peak = relativistic_breit_wigner(np.array([mass]), mass, width)[0]
    out = []
    while sum(len(o) for o in out) < n:
        m = rng.uniform(70.0, 110.0, 4 * n)
        keep = rng.uniform(0.0, peak, 4 * n) < relativistic_breit_wigner(m, mass, width)
        out.append(m[keep])
    return np.concatenate(out)[:n]


def test_shape_is_normalised():
    from scipy.integrate import quad

    total, _ = quad(lambda m: relativistic_breit_wigner(m, 91.19, 2.5), 0.0, 1e4, limit=400, points=[91.19])
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mass,width", [(91.19, 2.50), (90.0, 3.2)])
def test_fit_recovers_truth(mass, width):
    m = _sample_bw(mass, width, 200_000, seed=1)
    fit = fit_breit_wigner(m, window=(mass - 7, mass + 7))
    assert abs(fit.mass - mass) < 4 * fit.mass_err + 1e-3
    assert abs(fit.width - width) < 4 * fit.width_err
    assert fit.chi2 / fit.ndf < 2.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="non-finite"):
        fit_breit_wigner(np.array([91.0, np.nan] * 100))
    with pytest.raises(ValueError, match="window"):
        fit_breit_wigner(np.full(1000, 91.0), window=(95.0, 85.0))
    with pytest.raises(ValueError, match="only 0 events"):
        fit_breit_wigner(np.full(1000, 10.0))
