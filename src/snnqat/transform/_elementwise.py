"""Integer quantization, dropout, pruning, mismatch and bit-shift decays."""

from __future__ import annotations

import torch

from snnqat.transform._rounding import (
    _safe,
)
from snnqat.transform._ste import (
    clipped_round_passthrough,
    make_backward_passthrough,
    round_passthrough,
)
from snnqat.transform._validation import (
    _NONNEG_MSG,
    MAX_DASH,
    _check_bool,
    _check_generator,
    _check_int,
    _check_nonempty,
    _check_positive,
    _check_probability,
    _check_real,
    _check_tensor,
)

# -- integer quantization ---------------------------------------------------------------------


def int_quant(
    value: torch.Tensor,
    maintain_zero: bool = True,
    map_to_max: bool = False,
    n_bits: int = 8,
    max_n_bits: int = 8,
) -> torch.Tensor:
    r"""Scale ``value`` to signed ``n_bits`` integers by its largest magnitude, then round.

    With ``Q = 2**(n_bits-1) - 1`` and ``M = max|v|``:

    .. math::

        \mathrm{out} = \mathrm{round}(s\,v), \qquad s = Q / M \;(1 \text{ if } M = 0),

    multiplied by ``(2**(max_n_bits-1) - 1) / Q`` when ``map_to_max`` (use the full range of a
    ``max_n_bits`` word). ``v = value`` when ``maintain_zero``; otherwise
    ``v = value - (max + min)/2`` is centred on the midpoint of its range first. The result
    holds integer-valued floats in ``[-Q, Q]`` (``[-Qmax, Qmax]`` with ``map_to_max``).
    Gradient: straight-through round, so ``d out / d value = s`` plus a term through ``M``.

    Args:
        value: Floating-point tensor (not modified).
        maintain_zero: Keep 0 at 0 (no centring).
        map_to_max: Spread the ``n_bits`` levels over the ``max_n_bits`` integer range.
        n_bits: Bits of the signed target integers, ``>= 2``.
        max_n_bits: Bits of the hardware word for ``map_to_max``, ``>= n_bits`` then.

    Returns:
        Integer-valued tensor of ``value``'s shape and dtype.

    Raises:
        TypeError: If ``value`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``n_bits < 2``, or ``map_to_max`` with ``max_n_bits < n_bits``.

    Examples:
        >>> x = torch.tensor([-1, -0.5, 0.25, 0, 0.25, 0.5, 1])
        >>> int_quant(x, n_bits=3)
        tensor([-3., -2.,  1.,  0.,  1.,  2.,  3.])
        >>> int_quant(x, n_bits=3, map_to_max=True)
        tensor([-127.,  -64.,   32.,    0.,   32.,   64.,  127.])
        >>> int_quant(torch.tensor([1.0, 2.0, 3.0]), maintain_zero=False, n_bits=3)
        tensor([-3.,  0.,  3.])
    """
    _check_tensor("value", value)
    _check_nonempty("value", value)
    maintain_zero = _check_bool("maintain_zero", maintain_zero)
    map_to_max = _check_bool("map_to_max", map_to_max)
    q = 2 ** (_check_int("n_bits", n_bits, 2, 8) - 1) - 1
    low = n_bits if map_to_max else 2
    q_max = 2 ** (_check_int("max_n_bits", max_n_bits, low, 8) - 1) - 1
    if not maintain_zero:
        value = value - (value.amax() + value.amin()) / 2
    m = value.abs().amax()
    scale = torch.where(m > 0, q / _safe(m), torch.ones_like(m))
    if map_to_max:
        scale = scale * (q_max / q)
    return round_passthrough(scale * value)


# -- masks and noise --------------------------------------------------------------------------


def dropout(
    param: torch.Tensor,
    dropout_prob: float = 0.5,
    *,
    rescale: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Zero each element of ``param`` independently with probability ``dropout_prob``.

    ``out = param * m`` with ``m_i = 1[U_i > p]``, ``U_i ~ U[0, 1)`` drawn on ``param``'s
    device; the gradient is the same 0/1 mask. By default the survivors are **not**
    rescaled by ``1/(1 - p)``: this transform models synapses that are missing on the
    hardware, where nothing compensates for them, so the training signal should see the
    network as it will run. Pass ``rescale=True`` for the usual inverted dropout.

    Args:
        param: Floating-point tensor (not modified).
        dropout_prob: Probability ``p`` in ``[0, 1]`` of zeroing an element.
        rescale: Multiply the survivors by ``1/(1 - p)`` (when ``p < 1``).
        generator: Optional ``torch.Generator`` on ``param``'s device.

    Returns:
        The masked tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``dropout_prob`` is outside ``[0, 1]``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> dropout(torch.ones(6), 0.5, generator=g)
        tensor([0., 1., 0., 0., 0., 1.])
        >>> dropout(torch.ones(3), 0.0)
        tensor([1., 1., 1.])
    """
    _check_tensor("param", param)
    p = _check_probability("dropout_prob", dropout_prob)
    rescale = _check_bool("rescale", rescale)
    generator = _check_generator(generator, param)
    u = torch.rand(param.shape, dtype=param.dtype, device=param.device, generator=generator)
    out = torch.where(u > p, param, torch.zeros_like(param))
    return out / (1.0 - p) if rescale and p < 1.0 else out


def magnitude_prune(param: torch.Tensor, fraction: float) -> torch.Tensor:
    """Zero the ``round(fraction * numel)`` elements of ``param`` with the smallest ``|w|``.

    ``out = param * m`` where the mask ``m`` is 0 on the pruned elements and 1 elsewhere;
    the gradient is the same mask (pruned weights get none). Ties in ``|w|`` are broken
    by ``torch.topk``.

    Args:
        param: Floating-point tensor (not modified).
        fraction: Fraction of elements to prune, in ``[0, 1]``.

    Returns:
        The pruned tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or ``fraction`` is not a number.
        ValueError: If ``fraction`` is outside ``[0, 1]``.

    Examples:
        >>> magnitude_prune(torch.tensor([0.5, -0.1, 2.0, 0.05]), 0.5)
        tensor([0.5000, 0.0000, 2.0000, 0.0000])
    """
    _check_tensor("param", param)
    n_prune = round(_check_probability("fraction", fraction) * param.numel())
    with torch.no_grad():
        keep = torch.ones(param.numel(), dtype=torch.bool, device=param.device)
        keep[torch.topk(param.abs().flatten(), n_prune, largest=False).indices] = False
    return torch.where(keep.view(param.shape), param, torch.zeros_like(param))


def gaussian_mismatch(
    param: torch.Tensor,
    percent_deviation: float = 10.0,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Multiply each element by ``1 + eps``, ``eps ~ N(0, (percent_deviation / 100)**2)``.

    Models device mismatch: every weight, threshold or time constant of an analogue chip
    deviates from its nominal value by a relative Gaussian error. The default (10 %
    standard deviation) is the reference's JAX mismatch default (30 % at 3 sigma). The
    gradient is ``1 + eps``. Noise is drawn on ``param``'s device.

    Args:
        param: Floating-point tensor (not modified).
        percent_deviation: Standard deviation of the relative error, in percent (``>= 0``).
        generator: Optional ``torch.Generator`` on ``param``'s device.

    Returns:
        The perturbed tensor.

    Raises:
        TypeError: If ``param`` is not a floating-point tensor or an argument has the wrong type.
        ValueError: If ``percent_deviation`` is negative or not finite.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian_mismatch(torch.ones(3), 10.0, generator=g)
        tensor([1.1541, 0.9707, 0.7821])
        >>> gaussian_mismatch(torch.ones(2), 0.0)
        tensor([1., 1.])
    """
    _check_tensor("param", param)
    sigma = _check_real("percent_deviation", percent_deviation, _NONNEG_MSG, 10.0) / 100.0
    if sigma < 0:
        raise ValueError(
            _NONNEG_MSG.format(name="percent_deviation", got=percent_deviation, example=10.0)
        )
    generator = _check_generator(generator, param)
    eps = torch.randn(param.shape, dtype=param.dtype, device=param.device, generator=generator)
    return param * (1.0 + sigma * eps)


# -- bit-shift decays -------------------------------------------------------------------------


def _quantized_decay(decay: torch.Tensor, max_dash: int = MAX_DASH) -> torch.Tensor:
    """``1 - 2**-dash`` with ``dash = clamp(round(-log2(-ln decay)), 0, max_dash)``.

    ``decay >= 1`` gives ``max_dash``, ``decay <= 0`` gives ``0``; NaN propagates.
    """
    d = decay.clamp(min=torch.finfo(decay.dtype).tiny, max=1.0)
    raw = torch.round(-torch.log2(-torch.log(d)))
    dash = torch.where(d >= 1.0, torch.full_like(d, max_dash), raw).clamp(0, max_dash)
    return 1.0 - torch.exp2(-dash)


_decay_passthrough = make_backward_passthrough(_quantized_decay)


def t_decay(decay: torch.Tensor, dt: float = 1e-3) -> torch.Tensor:
    r"""Snap decay factors to the nearest hardware bit-shift decay, straight-through.

    A neuron with time constant ``tau`` decays per step by ``alpha = exp(-dt/tau)``; the
    hardware implements ``v <- v - (v >> dash)``, i.e. ``alpha_q = 1 - 2**-dash``, with the
    mapping ``dash = round(log2(tau/dt))``. Since ``tau/dt = -1/ln(alpha)``, ``dt`` cancels:

    .. math::

        \mathrm{dash} = \mathrm{clamp}(\mathrm{round}(-\log_2(-\ln\alpha)), 0, 15),
        \qquad \mathrm{out} = 1 - 2^{-\mathrm{dash}}.

    ``alpha >= 1`` (no leak) maps to the slowest decay ``1 - 2**-15`` and ``alpha <= 0`` to
    ``0``, so the result is never NaN for non-NaN input. The gradient is the identity (STE).

    Args:
        decay: Floating-point tensor of decay factors ``alpha``.
        dt: Simulation time step in seconds (``> 0``); it cancels from the result and is
            accepted for compatibility.

    Returns:
        The quantized decays, same shape and dtype.

    Raises:
        TypeError: If ``decay`` is not a floating-point tensor or ``dt`` is not a number.
        ValueError: If ``dt <= 0``.

    Examples:
        >>> t_decay(torch.tensor([0.4156, 0.8306, 0.5, 0.99, 1.0, 0.0]))
        tensor([0.0000, 0.7500, 0.5000, 0.9922, 1.0000, 0.0000])
        >>> float(t_decay(torch.tensor(1.0)))
        0.999969482421875
    """
    _check_tensor("decay", decay)
    _check_positive("dt", dt, 1e-3)
    return _decay_passthrough(decay)


class class_calc_q_decay:  # noqa: N801 (reference name)
    """The bit-shift decay map of :func:`t_decay`, without the straight-through gradient.

    Args:
        dt: Simulation time step in seconds (``> 0``); it cancels from the result.

    Raises:
        TypeError: If ``dt`` is not a number.
        ValueError: If ``dt <= 0``.

    Examples:
        >>> q = class_calc_q_decay(dt=1e-3)
        >>> q(torch.tensor([0.9, 0.99]))
        tensor([0.8750, 0.9922])
        >>> q
        class_calc_q_decay(dt=0.001)
    """

    def __init__(self, dt: float) -> None:
        self.dt = _check_positive("dt", dt, 1e-3)

    def calc_bitshift_decay(self, decay: torch.Tensor) -> torch.Tensor:
        """Return ``1 - 2**-dash`` for the nearest bit-shift ``dash`` in ``0..15``."""
        return _quantized_decay(_check_tensor("decay", decay))

    def __call__(self, decay: torch.Tensor) -> torch.Tensor:
        return self.calc_bitshift_decay(decay)

    def __repr__(self) -> str:
        return f"class_calc_q_decay(dt={self.dt!r})"


def round_bitshift(dash: torch.Tensor, max_dash: int = MAX_DASH) -> torch.Tensor:
    """Round bit-shifts to integers in the hardware range ``0..max_dash`` (clipped STE).

    Forward ``clamp(round(dash), 0, max_dash)``; gradient ``1`` for ``0 <= dash <= max_dash``
    and ``0`` outside, so a negative ``dash`` (which would make ``alpha < 0``) never reaches
    the network.

    Args:
        dash: Floating-point tensor of bit-shifts.
        max_dash: Largest hardware bit-shift (``>= 1``; 15 for a 4-bit field).

    Returns:
        The rounded, clamped bit-shifts.

    Raises:
        TypeError: If ``dash`` is not a floating-point tensor or ``max_dash`` not an int.
        ValueError: If ``max_dash < 1``.

    Examples:
        >>> round_bitshift(torch.tensor([-1.2, 4.32, 7.5, 21.0]))
        tensor([ 0.,  4.,  8., 15.])
    """
    _check_tensor("dash", dash)
    return clipped_round_passthrough(dash, 0, _check_int("max_dash", max_dash, 1, MAX_DASH))
