"""The real DFT sets in ../shared/data go through the data pipeline; slow: a short real training."""

from pathlib import Path

import numpy as np
import pytest
import torch

from eqna.data import keys
from eqna.data.collate import collate
from eqna.data.datasets import GraphDataset, LabelKeys, read_structures
from eqna.data.graph import GraphSpec

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"../shared/data not found at {SHARED} (CI always has it)"
)


@needs_shared
def test_periodic_silicon_labels_and_graphs():
    frames = read_structures(str(SHARED / "periodic" / "mlearn_Si_test.xyz"))
    dataset = GraphDataset(frames, GraphSpec(5.0, [14]), LabelKeys(), "mlearn_Si_test.xyz")
    batch = collate(dataset.graphs)
    assert bool(batch[keys.HAS_STRESS].all()) and bool(batch[keys.HAS_FORCES].all())
    stress = frames[0].get_stress(voigt=False)
    np.testing.assert_allclose(batch[keys.STRESS][0].numpy(), stress)
    # every periodic image within the cutoff is found: >= 4 neighbours per Si atom
    per_atom = batch[keys.EDGE_INDEX].shape[1] / batch[keys.NODE_TYPES].shape[0]
    assert per_atom > 4


@needs_shared
def test_molecule_sets_and_isolated_atoms():
    from eqna.data.statistics import isolated_atom_energies

    isolated = read_structures(str(SHARED / "molecules" / "acac_isolated_atoms.xyz"))
    e0s = isolated_atom_energies(isolated, [1, 6, 8], lambda a: a.get_potential_energy())
    assert all(e < 0 for e in e0s.values())
    frames = read_structures(str(SHARED / "molecules" / "acac_test_MD_300K.xyz"))[:20]
    dataset = GraphDataset(frames, GraphSpec(5.0, [1, 6, 8]), LabelKeys(), "acac_test_MD_300K.xyz")
    assert all(bool(g[keys.HAS_ENERGY]) for g in dataset.graphs)


@needs_shared
@pytest.mark.slow
def test_short_acac_training_learns_forces(tmp_path):
    from eqna.train.config import load_config
    from eqna.train.run import train

    repo = Path(__file__).resolve().parents[2]
    config = load_config(
        repo / "configs" / "acac.yaml",
        [
            f"data.train={SHARED}/molecules/acac_train_300K.xyz",
            f"data.test={SHARED}/molecules/acac_test_MD_300K.xyz",
            f"data.e0s={SHARED}/molecules/acac_isolated_atoms.xyz",
            "training.max_epochs=12",  # an epoch budget: the result must not depend on the load
            "training.max_time_minutes=null",
            "training.progress_bar=false",
        ],
    )
    torch.set_num_threads(2)
    metrics = train(config, tmp_path / "acac")
    assert metrics["forces_mae"] < 250.0  # meV/Å; the force RMS of the data is ~1 eV/Å
