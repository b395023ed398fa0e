"""Mask-free cubic spline with linear tails: the INN's spline [54] in a form torch.compile can fuse.

What it computes
----------------
Exactly the function of nflows' ``unconstrained_cubic_spline(..., tails="linear")``, the
implementation of the monotone cubic splines of Durkan et al., *Neural Spline Flows* (the
paper's ref. [54]; the cubic variant is their "cubic-spline flows", with the knot derivatives of
Steffen's monotone interpolation and Blinn's closed-form inverse of the cubic): forward, inverse and
elementwise log|det|, with the same knot construction (softmax widths/heights with minimum bin
sizes, sigmoid end derivatives, inner derivatives from the neighbouring slopes), the same bin
search, the same choice among the cubic's three roots and the same near-quadratic branch. Every
expression is nflows' own, in nflows' order, so in eager float64 the values agree bit for bit
with nflows wherever nflows is finite, and the gradients agree to rounding in the summation
order (tests/test_spline.py, with nflows as the oracle).

Why mask-free
-------------
nflows selects the elements of each case with boolean masks: ``inputs[inside_mask]``, then
``discriminant[one_root_mask]``, ``[three_roots_mask]``, ``[quadratic_mask]`` ... Every masked
read and write is a separate, data-dependent-shape op (a nonzero count, a gather, an index_put),
so one coupling's inverse is several hundred tiny dispatched ops, and ``torch.compile`` cannot
trace them into one graph (a data-dependent shape breaks the graph). Here every branch is
evaluated on *all* elements and the result is picked with ``torch.where``; bins are found by a
comparison-count and read with ``gather``. All shapes are static, so the compiler fuses the
whole spline into a few kernels.

The price of evaluating every branch everywhere: an element that a branch does not serve can
hit that branch's singularity (the one-root formula's ``sqrt(-disc)`` on a three-root element,
``1/a`` on a near-quadratic one, a log outside the interval). ``torch.where`` gives the unused
branch a zero gradient, but ``0 * inf = nan`` would still poison the backward pass, so each
singular op's argument is guarded with a harmless value (1, or the interval's centre) on the
elements that do not use it -- the standard "double where". Guards only change values that are
thrown away; the selected values are computed by the same expressions as in nflows.

The one intended difference: where nflows itself returns NaN (e.g. an exactly linear bin, whose
near-quadratic branch divides 0 by 0) this module returns NaN too, for the same elements, but
never spreads NaN gradients to *other* elements through the masks' unused branches.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = ["unconstrained_cubic_spline", "DEFAULT_MIN_BIN_WIDTH", "DEFAULT_MIN_BIN_HEIGHT", "DEFAULT_EPS",
           "DEFAULT_QUADRATIC_THRESHOLD"]

# nflows' defaults (nflows.transforms.splines.cubic); the INN overrides the quadratic threshold.
DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_EPS = 1e-5
DEFAULT_QUADRATIC_THRESHOLD = 1e-3
_SQRT3_HALF = 0.5 * math.sqrt(3)  # nflows writes 0.5 * math.sqrt(3) * t: the same float


def _cbrt(x: torch.Tensor) -> torch.Tensor:
    """nflows' ``torchutils.cbrt`` (real cube root), the same expression."""
    return torch.sign(x) * torch.exp(torch.log(torch.abs(x)) / 3.0)


def _knots(unnormalized_widths: torch.Tensor, unnormalized_heights: torch.Tensor,
           unnorm_derivatives_left: torch.Tensor, unnorm_derivatives_right: torch.Tensor,
           min_bin_width: float, min_bin_height: float):
    """Knot positions and the per-bin cubic ``a s^3 + b s^2 + c s + d`` (``s`` measured from the
    bin's left knot), on the unit square, as in nflows' ``cubic_spline``."""
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0:
        raise ValueError("Minimal bin width too large for the number of bins")
    if min_bin_height * num_bins > 1.0:
        raise ValueError("Minimal bin height too large for the number of bins")

    widths = F.softmax(unnormalized_widths, dim=-1)
    widths = min_bin_width + (1 - min_bin_width * num_bins) * widths
    # nflows: cumsum, then the last entry set to exactly 1 (in place), then a 0 prepended.
    zero = widths.new_zeros(widths.shape[:-1] + (1,))
    one = widths.new_ones(widths.shape[:-1] + (1,))
    cumwidths = torch.cat([zero, torch.cumsum(widths, dim=-1)[..., :-1], one], dim=-1)

    heights = F.softmax(unnormalized_heights, dim=-1)
    heights = min_bin_height + (1 - min_bin_height * num_bins) * heights
    cumheights = torch.cat([zero, torch.cumsum(heights, dim=-1)[..., :-1], one], dim=-1)

    # Inner knot derivatives (Steffen-type, monotone; [54] sec. on cubic splines): nflows' formulas.
    slopes = heights / widths
    min_something_1 = torch.min(torch.abs(slopes[..., :-1]), torch.abs(slopes[..., 1:]))
    min_something_2 = (
        0.5
        * (widths[..., 1:] * slopes[..., :-1] + widths[..., :-1] * slopes[..., 1:])
        / (widths[..., :-1] + widths[..., 1:])
    )
    min_something = torch.min(min_something_1, min_something_2)
    derivatives_left = torch.sigmoid(unnorm_derivatives_left) * 3 * slopes[..., 0][..., None]
    derivatives_right = torch.sigmoid(unnorm_derivatives_right) * 3 * slopes[..., -1][..., None]
    derivatives = min_something * (torch.sign(slopes[..., :-1]) + torch.sign(slopes[..., 1:]))
    derivatives = torch.cat([derivatives_left, derivatives, derivatives_right], dim=-1)

    a = (derivatives[..., :-1] + derivatives[..., 1:] - 2 * slopes) / widths.pow(2)
    b = (3 * slopes - 2 * derivatives[..., :-1] - derivatives[..., 1:]) / widths
    c = derivatives[..., :-1]
    d = cumheights[..., :-1]
    return cumwidths, cumheights, a, b, c, d


def _bin_index(knots: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Bin of each input in [0, 1]: nflows' ``searchsorted`` (``sum(inputs >= knots) - 1`` with the
    last knot raised by 1e-6). For inputs in [0, 1] the first knot (0) always counts and the raised
    last one (1 + 1e-6) never does, so counting the K - 1 inner knots gives the same index."""
    return torch.sum(inputs[..., None] >= knots[..., 1:-1], dim=-1, keepdim=True)


def unconstrained_cubic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnorm_derivatives_left: torch.Tensor,
    unnorm_derivatives_right: torch.Tensor,
    inverse: bool = False,
    tail_bound: float = 1.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    eps: float = DEFAULT_EPS,
    quadratic_threshold: float = DEFAULT_QUADRATIC_THRESHOLD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """nflows' ``unconstrained_cubic_spline(..., tails="linear")`` without boolean masks.

    Same arguments and returns (outputs and elementwise log|d out / d in|, of the inverse when
    ``inverse=True``): the spline maps ``[-tail_bound, tail_bound]`` onto itself, the identity
    outside. See the module docstring for why and how it is mask-free.
    """
    left, right, bottom, top = -tail_bound, tail_bound, -tail_bound, tail_bound
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    # Elements in the linear tails go through the spline at the interval's centre (a harmless,
    # non-singular point) and are then replaced by the identity: their spline value is unused.
    x = torch.where(inside, inputs, torch.zeros_like(inputs))

    cumwidths, cumheights, a, b, c, d = _knots(unnormalized_widths, unnormalized_heights, unnorm_derivatives_left,
                                              unnorm_derivatives_right, min_bin_width, min_bin_height)
    if inverse:
        x = (x - bottom) / (top - bottom)
        bin_idx = _bin_index(cumheights, x)
    else:
        x = (x - left) / (right - left)
        bin_idx = _bin_index(cumwidths, x)

    inputs_a = a.gather(-1, bin_idx)[..., 0]
    inputs_b = b.gather(-1, bin_idx)[..., 0]
    inputs_c = c.gather(-1, bin_idx)[..., 0]
    inputs_d = d.gather(-1, bin_idx)[..., 0]
    input_left_cumwidths = cumwidths.gather(-1, bin_idx)[..., 0]

    if inverse:
        # The root by nflows' closed form, on detached inputs (no autograd graph through the
        # solver), then the gradient by the implicit function theorem (see _implicit_root).
        root = _cubic_root(x.detach(), inputs_a.detach(), inputs_b.detach(), inputs_c.detach(), inputs_d.detach(),
                           input_left_cumwidths.detach(), cumwidths.gather(-1, bin_idx + 1)[..., 0].detach(),
                           eps, quadratic_threshold)
        outputs = _implicit_root(root, x, inputs_a, inputs_b, inputs_c, inputs_d, input_left_cumwidths,
                                 quadratic_threshold)
        shifted_outputs = outputs - input_left_cumwidths
        logabsdet = -torch.log(
            3 * inputs_a * shifted_outputs.pow(2) + 2 * inputs_b * shifted_outputs + inputs_c
        )
        outputs = outputs * (right - left) + left
    else:
        shifted_inputs = x - input_left_cumwidths
        outputs = (
            inputs_a * shifted_inputs.pow(3)
            + inputs_b * shifted_inputs.pow(2)
            + inputs_c * shifted_inputs
            + inputs_d
        )
        logabsdet = torch.log(3 * inputs_a * shifted_inputs.pow(2) + 2 * inputs_b * shifted_inputs + inputs_c)
        outputs = outputs * (top - bottom) + bottom

    # Linear tails: the identity with log|det| = 0 (nflows: outputs[outside] = inputs[outside]).
    outputs = torch.where(inside, outputs, inputs)
    logabsdet = torch.where(inside, logabsdet, torch.zeros_like(logabsdet))
    return outputs, logabsdet


def _cubic_root(y: torch.Tensor, inputs_a: torch.Tensor, inputs_b: torch.Tensor, inputs_c: torch.Tensor,
                inputs_d: torch.Tensor, input_left_cumwidths: torch.Tensor, input_right_cumwidths: torch.Tensor,
                eps: float, quadratic_threshold: float) -> torch.Tensor:
    """Root of ``a s^3 + b s^2 + c s + d = y`` in the bin, on the unit square: nflows' closed form
    (Blinn, "How to solve a cubic equation, part 5", 2007), expression for expression, with every
    case computed on every element and picked by ``torch.where``. Called on detached tensors only:
    no gradient flows through here, so the cases a branch does not serve may produce inf/NaN
    without harm (``where`` discards them in the forward pass, and there is no backward pass)."""
    # Modified coefficients for solving the cubic.
    inputs_b_ = (inputs_b / inputs_a) / 3.0
    inputs_c_ = (inputs_c / inputs_a) / 3.0
    inputs_d_ = (inputs_d - y) / inputs_a

    delta_1 = -inputs_b_.pow(2) + inputs_c_
    delta_2 = -inputs_c_ * inputs_b_ + inputs_d_
    delta_3 = inputs_b_ * inputs_d_ - inputs_c_.pow(2)
    discriminant = 4.0 * delta_1 * delta_3 - delta_2.pow(2)
    depressed_1 = -2.0 * inputs_b_ * delta_1 + delta_2
    depressed_2 = delta_1
    three_roots_mask = discriminant >= 0  # nflows: "Discriminant == 0 might be a problem in practice."

    # One real root (discriminant < 0).
    sqrt_neg_disc = torch.sqrt(-discriminant)
    p = _cbrt((-depressed_1 + sqrt_neg_disc) / 2.0)
    q = _cbrt((-depressed_1 - sqrt_neg_disc) / 2.0)
    one_root = (p + q) - inputs_b_ + input_left_cumwidths

    # Three real roots (discriminant >= 0): the first one inside the bin (+- eps), else the first
    # (nflows takes argsort(masks, descending)[0], a stable sort: the same pick).
    theta = torch.atan2(torch.sqrt(discriminant), -depressed_1)
    theta = theta / 3.0
    cubic_root_1 = torch.cos(theta)
    cubic_root_2 = torch.sin(theta)
    root_1 = cubic_root_1
    root_2 = -0.5 * cubic_root_1 - _SQRT3_HALF * cubic_root_2
    root_3 = -0.5 * cubic_root_1 + _SQRT3_HALF * cubic_root_2
    root_scale = 2 * torch.sqrt(-depressed_2)
    root_shift = -inputs_b_ + input_left_cumwidths
    root_1 = root_1 * root_scale + root_shift
    root_2 = root_2 * root_scale + root_shift
    root_3 = root_3 * root_scale + root_shift
    lo = input_left_cumwidths - eps
    hi = input_right_cumwidths + eps
    in_1 = (lo < root_1) & (root_1 < hi)
    in_2 = (lo < root_2) & (root_2 < hi)
    in_3 = (lo < root_3) & (root_3 < hi)
    three_roots = torch.where(in_1, root_1, torch.where(in_2, root_2, torch.where(in_3, root_3, root_1)))

    # |a| < threshold (nearly quadratic): nflows drops the cubic term and solves
    # b s^2 + c s + (d - y) = 0 by the quadratic formula (its names: a, b, c).
    quadratic_mask = inputs_a.abs() < quadratic_threshold
    qa = inputs_b
    qb = inputs_c
    qc = inputs_d - y
    alpha = (-qb + torch.sqrt(qb.pow(2) - 4 * qa * qc)) / (2 * qa)
    quadratic = alpha + input_left_cumwidths

    return torch.where(quadratic_mask, quadratic, torch.where(three_roots_mask, three_roots, one_root))


def _implicit_root(root: torch.Tensor, y: torch.Tensor, inputs_a: torch.Tensor, inputs_b: torch.Tensor,
                   inputs_c: torch.Tensor, inputs_d: torch.Tensor, input_left_cumwidths: torch.Tensor,
                   quadratic_threshold: float) -> torch.Tensor:
    """``root`` (a constant, from :func:`_cubic_root`) as a differentiable function of ``y`` and the
    spline parameters, by the implicit function theorem.

    The root ``u = l + t`` solves ``P(t) = y`` with ``P(t) = a t^3 + b t^2 + c t + d`` (``a`` taken
    as 0 on nflows' near-quadratic elements, whose root ignores ``a``), so
    ``du = dl + (dy - dP|_t) / P'(t)``. Writing ``(r - r.detach()) / P'`` with ``r = y - P(t)``
    gives exactly that gradient while adding exactly 0 to the value: the output is bit for bit the
    closed-form root.

    Why not autograd through the closed form, as nflows does: that backward pass is some hundreds
    of ops per coupling (the INN training step's bottleneck), and it is *inaccurate*. The closed form
    subtracts nearly equal large terms ((p + q) - b/(3a) with a small |a|, e.g. near the identity
    spline every INN starts from), and their derivatives cancel the same way: measured in float64
    against a 50-digit mpmath reference, nflows' gradients of the inverse w.r.t. the knot
    parameters are off by up to ~1e-6 relative for near-identity splines (tests/test_spline.py),
    while the implicit gradient is as accurate as the root itself.
    """
    t = root - input_left_cumwidths.detach()
    quadratic_mask = inputs_a.detach().abs() < quadratic_threshold
    a = torch.where(quadratic_mask, torch.zeros_like(inputs_a), inputs_a)
    residual = y - (((a * t + inputs_b) * t + inputs_c) * t + inputs_d)
    slope = ((3 * a * t + 2 * inputs_b) * t + inputs_c).detach()
    return root + (input_left_cumwidths - input_left_cumwidths.detach()) + (residual - residual.detach()) / slope
