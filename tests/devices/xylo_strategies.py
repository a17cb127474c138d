"""Random Xylo specs and rasters for property tests (hypothesis) and vendor comparisons (NumPy).

Both generators lean toward the edges: extreme weights, shifts that make 15 input spikes
saturate a synapse, dash 0/1/15 (minimum-step decay), thresholds of 1 and of the maximum,
extreme biases, aliases (forward, backward and onto the neuron itself).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from snnqat.devices.xylo import XyloLimits, XyloSpec

LIMITS = (
    XyloLimits(max_alias_targets=2),
    XyloLimits(state_bits=10, threshold_bits=10, max_alias_targets=3),
    XyloLimits(
        state_bits=12,
        threshold_bits=12,
        max_hidden_spikes=3,
        max_output_spikes=2,
        max_input_spikes=4,
        max_alias_targets=2,
    ),
)


def _edge_or_any(low: int, high: int, edges: list[int]) -> st.SearchStrategy[int]:
    inside = sorted({e for e in edges if low <= e <= high})
    return st.one_of(st.sampled_from(inside), st.integers(low, high))


def _array(draw, shape: tuple[int, ...], element: st.SearchStrategy[int]) -> np.ndarray:
    return draw(hnp.arrays(np.int64, shape, elements=element))


@st.composite
def specs(draw, limits: XyloLimits) -> XyloSpec:
    """A valid spec for ``limits`` with 1-4 inputs, 1-6 hidden, 1-3 outputs."""
    nin, nhid = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    nout, nsyn = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    wmin, wmax = limits.weight_min, limits.weight_max
    weight = st.one_of(st.just(0), _edge_or_any(wmin, wmax, [wmin, -1, 1, wmax]))
    dash = _edge_or_any(0, limits.max_dash, [0, 1, 2, limits.max_dash])
    tmax = limits.threshold_max
    threshold = _edge_or_any(1, tmax, [1, 2, 3, 100, tmax])
    lo, hi = limits.state_min, limits.state_max
    bias = st.one_of(st.just(0), _edge_or_any(lo, hi, [lo, -1, 1, hi]))
    max_shift = limits.state_bits - limits.weight_bits
    alias = st.lists(st.integers(0, nhid - 1), max_size=limits.max_alias_targets)
    return XyloSpec(
        weights_in=_array(draw, (nin, nhid, nsyn), weight),
        weights_rec=_array(draw, (nhid, nhid, nsyn), weight),
        weights_out=_array(draw, (nhid, nout), weight),
        dash_mem=_array(draw, (nhid,), dash),
        dash_syn=_array(draw, (nhid, nsyn), dash),
        dash_mem_out=_array(draw, (nout,), dash),
        dash_syn_out=_array(draw, (nout,), dash),
        threshold=_array(draw, (nhid,), threshold),
        threshold_out=_array(draw, (nout,), threshold),
        bias=_array(draw, (nhid,), bias),
        bias_out=_array(draw, (nout,), bias),
        weight_shift_in=draw(st.integers(0, max_shift)),
        weight_shift_rec=draw(st.integers(0, max_shift)),
        weight_shift_out=draw(st.integers(0, max_shift)),
        aliases=[draw(alias) for _ in range(nhid)],
    )


def rasters(n_inputs: int, batch: int, max_steps: int = 10) -> st.SearchStrategy[np.ndarray]:
    """``(batch, T, n_inputs)`` counts, mostly small, some above every input cap."""
    count = st.one_of(st.just(0), st.just(1), st.integers(0, 40))
    shape = st.integers(1, max_steps).map(lambda t: (batch, t, n_inputs))
    return hnp.arrays(np.int64, shape, elements=count)


def random_spec(rng: np.random.Generator, limits: XyloLimits) -> XyloSpec:
    """The NumPy twin of :func:`specs`, for many cheap vendor comparisons."""
    nin, nhid, nout, nsyn = (
        int(rng.integers(a, b + 1)) for a, b in [(1, 5), (1, 8), (1, 3), (1, 2)]
    )
    edgy = rng.random() < 0.5

    def pick(shape, low, high, edges, p_zero=0.0):
        values = rng.integers(low, high + 1, size=shape)
        if edgy:
            mask = rng.random(shape) < 0.3
            values = np.where(mask, rng.choice(edges, size=shape), values)
        return np.where(rng.random(shape) < p_zero, 0, values).astype(np.int64)

    w = (limits.weight_min, limits.weight_max, [limits.weight_min, -1, 1, limits.weight_max], 0.3)
    d = (0, limits.max_dash, [0, 1, limits.max_dash])
    th = (1, limits.threshold_max, [1, 2, limits.threshold_max])
    b = (limits.state_min, limits.state_max, [limits.state_min, limits.state_max], 0.6)
    shift = limits.state_bits - limits.weight_bits
    aliases = [
        rng.integers(0, nhid, size=int(rng.integers(0, limits.max_alias_targets + 1))).tolist()
        if rng.random() < 0.4
        else []
        for _ in range(nhid)
    ]
    return XyloSpec(
        weights_in=pick((nin, nhid, nsyn), *w),
        weights_rec=pick((nhid, nhid, nsyn), *w),
        weights_out=pick((nhid, nout), *w),
        dash_mem=pick((nhid,), *d),
        dash_syn=pick((nhid, nsyn), *d),
        dash_mem_out=pick((nout,), *d),
        dash_syn_out=pick((nout,), *d),
        threshold=pick((nhid,), *th) if edgy else rng.integers(1, 2000, size=nhid),
        threshold_out=pick((nout,), *th) if edgy else rng.integers(1, 2000, size=nout),
        bias=pick((nhid,), *b),
        bias_out=pick((nout,), *b),
        weight_shift_in=int(rng.integers(0, shift + 1)),
        weight_shift_rec=int(rng.integers(0, shift + 1)),
        weight_shift_out=int(rng.integers(0, shift + 1)),
        aliases=aliases,
    )
