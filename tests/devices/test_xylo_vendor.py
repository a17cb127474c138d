"""XyloSim against the vendor simulator ``xylosim.v2`` (PyPI ``xylosim``) on random specs.

Skipped when ``xylosim`` is not installed. The vendor layer keeps raw pointers to the
``XyloSynapse`` objects it is built from, so :class:`VendorXylo` keeps them alive.
"""

from __future__ import annotations

import numpy as np
import pytest
from xylo_strategies import random_spec

from snnqat.devices.xylo import XyloLimits, XyloSim, XyloSpec

v2 = pytest.importorskip("xylosim.v2")

pytestmark = pytest.mark.vendor

# the vendor's constants are compiled in: 16-bit states, caps 31 / 1 / 15
VENDOR_LIMITS = (XyloLimits(max_alias_targets=3), XyloLimits(max_alias_targets=1))
N_SPECS = 400


class VendorXylo:
    """``xylosim.v2.XyloLayer`` built from an :class:`XyloSpec`."""

    def __init__(self, spec: XyloSpec) -> None:
        self._synapses: list = []  # owned here: the C++ layer only stores pointers
        nsyn = spec.n_synapses
        self.layer = v2.XyloLayer(
            synapses_in=self._lists(spec.weights_in.reshape(spec.n_inputs, -1), nsyn),
            synapses_rec=self._lists(spec.weights_rec.reshape(spec.n_hidden, -1), nsyn),
            synapses_out=self._lists(spec.weights_out, 1),
            aliases=[list(a) for a in spec.aliases],
            threshold=spec.threshold.tolist(),
            threshold_out=spec.threshold_out.tolist(),
            has_bias=bool(spec.bias.any() or spec.bias_out.any()),
            bias=spec.bias.tolist(),
            bias_out=spec.bias_out.tolist(),
            weight_shift_inp=spec.weight_shift_in,
            weight_shift_rec=spec.weight_shift_rec,
            weight_shift_out=spec.weight_shift_out,
            dash_mem=spec.dash_mem.tolist(),
            dash_mem_out=spec.dash_mem_out.tolist(),
            dash_syns=spec.dash_syn.tolist(),
            dash_syns_out=[[int(d)] for d in spec.dash_syn_out],
            name="vendor",
        )

    def _lists(self, weights: np.ndarray, nsyn: int) -> list[list]:
        """Per source, its non-zero synapses (flattened target index = neuron * nsyn + syn)."""
        lists = []
        for row in weights:
            targets = [
                v2.XyloSynapse(int(t) // nsyn, int(t) % nsyn, int(row[t]))
                for t in np.flatnonzero(row)
            ]
            self._synapses.extend(targets)
            lists.append(targets)
        return lists

    def run(self, raster: np.ndarray) -> dict[str, np.ndarray]:
        out = np.array(self.layer.evolve(raster.tolist())).reshape(len(raster), -1)
        isyn = [np.array(self.layer.rec_i_syn).T]
        if len(self.layer.rec_i_syn2[0]):
            isyn.append(np.array(self.layer.rec_i_syn2).T)
        return {
            "out": out,
            "Vmem": np.array(self.layer.rec_v_mem).T,
            "Isyn": np.stack(isyn, axis=-1),
            "Spikes": np.array(self.layer.rec_recurrent_spikes),
            "Vmem_out": np.array(self.layer.rec_v_mem_out).T,
            "Isyn_out": np.array(self.layer.rec_i_syn_out).T,
        }


def compare(spec: XyloSpec, limits: XyloLimits, rasters: list[np.ndarray]) -> None:
    sim, vendor = XyloSim(spec, limits), VendorXylo(spec)
    for raster in rasters:  # consecutive calls continue from the previous state
        out, _, rec = sim(raster, record=True)
        expected = vendor.run(raster)
        np.testing.assert_array_equal(out, expected["out"])
        for key in ("Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out"):
            np.testing.assert_array_equal(rec[key], expected[key], err_msg=key)


@pytest.mark.parametrize("seed", range(8))
def test_matches_vendor_on_random_specs(seed):
    rng = np.random.default_rng(seed)
    for _ in range(N_SPECS // 8):
        limits = VENDOR_LIMITS[int(rng.integers(2))]
        spec = random_spec(rng, limits)
        spec.validate(limits)
        high = int(rng.choice([2, 4, 40]))
        rasters = [rng.integers(0, high, (int(rng.integers(1, 25)), spec.n_inputs)) for _ in "ab"]
        compare(spec, limits, rasters)


def sparse(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    return np.where(rng.random(shape) < density, rng.integers(-128, 128, shape), 0)


def test_matches_vendor_on_a_full_size_network():
    rng = np.random.default_rng(123)
    nin, nhid, nout = 16, 1000, 8
    spec = XyloSpec.zeros(
        nin, nhid, nout, n_synapses=2,
        weights_in=sparse(rng, (nin, nhid, 2), 0.2),
        weights_rec=sparse(rng, (nhid, nhid, 2), 0.02),
        weights_out=sparse(rng, (nhid, nout), 0.1),
        weight_shift_in=4, weight_shift_rec=4, weight_shift_out=3,
        dash_mem=rng.integers(1, 8, nhid), dash_syn=rng.integers(1, 8, (nhid, 2)),
        dash_mem_out=rng.integers(1, 8, nout), dash_syn_out=rng.integers(1, 8, nout),
        threshold=rng.integers(500, 5000, nhid), threshold_out=rng.integers(500, 5000, nout),
        aliases=[[int(rng.integers(nhid))] if rng.random() < 0.1 else [] for _ in range(nhid)],
    )  # fmt: skip
    compare(spec, XyloLimits(), [rng.integers(0, 3, (100, nin))])
