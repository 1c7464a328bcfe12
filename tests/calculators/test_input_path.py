"""One input path: the calculator, training batches and evaluation feed a model the same dict."""

import ase.build
import numpy as np
import pytest
import torch

from eqna.calculators import EqnaCalculator
from eqna.data import keys
from eqna.data.datasets import GraphDataset, LabelKeys
from eqna.data.prepare import make_loader
from eqna.models.io import build_model

HPARAMS = {"elements": [1, 6, 8, 14], "atomic_energies": [-1.0, -2.0, -3.0, -4.0]}
HPARAMS.update(num_channels=8, num_layers=1, radial_hidden=[8], r_max=3.5)


def _canonical(batch: dict) -> dict:
    """Inputs with the edges in one order (neighbour searches may list them differently)."""
    out = {k: v for k, v in batch.items() if k in keys.INPUT_FIELDS}
    edges = torch.cat([out[keys.EDGE_INDEX].T, out[keys.EDGE_CELL_SHIFT]], dim=1).double()
    order = np.lexsort(edges.numpy().T[::-1])
    out[keys.EDGE_INDEX] = out[keys.EDGE_INDEX][:, order]
    out[keys.EDGE_CELL_SHIFT] = out[keys.EDGE_CELL_SHIFT][order]
    return out


@pytest.mark.parametrize(
    "atoms",
    [ase.build.molecule("CH3CH2OH"), ase.build.bulk("Si", cubic=True)],
    ids=["molecule", "crystal"],
)
def test_calculator_and_training_build_the_same_input(atoms, float_dtype):
    atoms.rattle(0.05, seed=1)
    model = build_model("equivariant", dict(HPARAMS)).to(float_dtype)
    calc = EqnaCalculator(model, skin=0.7)
    from_calculator = calc.graph(atoms)
    dataset = GraphDataset([atoms], model.graph_spec, LabelKeys(), "x.xyz")
    (from_training,) = make_loader(dataset, 1, float_dtype, shuffle=False)
    ours, theirs = _canonical(from_calculator), _canonical(from_training)
    assert ours.keys() == theirs.keys() == keys.INPUT_FIELDS
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype, key
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
