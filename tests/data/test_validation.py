"""Every bad input is one DataError naming file, frame and key, found when the data is read."""

import time
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from eqna.data import keys
from eqna.data.collate import collate
from eqna.data.datasets import DataError, GraphDataset, LabelKeys, extract_labels
from eqna.data.graph import GraphSpec
from eqna.data.prepare import prepare_data
from eqna.data.validation import GeometryLimits, check_before_search, estimated_neighbours
from eqna.models.io import build_model
from eqna.tasks.loss import weighted_loss
from eqna.train.sections import DataConfig

RNG = np.random.default_rng(0)
POTENTIAL = SimpleNamespace(energy_weight=1.0, forces_weight=10.0, stress_weight=0.0)


def labelled(atoms: Atoms, energy: float | None = None, forces=True, **info) -> Atoms:
    """``atoms`` with an energy (default: -1 eV per atom), random forces and info labels."""
    atoms = atoms.copy()
    results = {"energy": -1.0 * len(atoms) if energy is None else energy}
    if forces:
        results["forces"] = RNG.normal(size=(len(atoms), 3))
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update(info)
    return atoms


def mixed(n: int = 6) -> list[Atoms]:
    """Molecules of varied composition (so least squares is well posed), H, C and O."""
    names = ["H2O", "CH4", "CO2", "CH3OH", "H2", "C2H6"]
    return [labelled(molecule(names[i % len(names)]), energy=-3.0 - i) for i in range(n)]


def write(tmp_path, name: str, frames: list[Atoms]) -> str:
    path = tmp_path / name
    ase.io.write(path, frames, format="extxyz")
    return str(path)


def prepare(tmp_path, frames, training=POTENTIAL, r_max=3.0, **data):
    data = {"valid_fraction": 0.2, **data}
    cfg = DataConfig(train=write(tmp_path, "train.xyz", frames), **data)
    return prepare_data(cfg, r_max, training=training)


# geometry


def test_two_atoms_at_distance_zero_name_file_frame_and_setting(tmp_path):
    bad = labelled(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(DataError, match=r"train.xyz frame 3: atoms 0 \(H\) and 1 \(H\) are 0 Å "):
        prepare(tmp_path, mixed(3) + [bad] + mixed(3))


def test_min_distance_is_configurable_and_zero_disables(tmp_path):
    close = labelled(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.3]]))
    frames = mixed(4) + [close]
    with pytest.raises(DataError, match=r"frame 4: .* closer than data.min_distance=0.5 Å"):
        prepare(tmp_path, frames, min_distance=0.5)
    prepare(tmp_path, frames, min_distance=0.0)  # not checked
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        DataConfig(train="a.xyz", min_distance=-1.0)


@pytest.mark.parametrize("what", ["positions", "cell"])
def test_non_finite_positions_or_cell(tmp_path, what):
    bad = labelled(bulk("Si", "diamond", a=5.43), energy=-10.0)
    if what == "positions":
        bad.positions[1, 2] = np.nan
    else:
        bad.cell[0, 0] = np.inf
    message = "atom position.* not finite .first: atom 1" if what == "positions" else "cell is not"
    with pytest.raises(DataError, match=rf"train.xyz frame 2: .*{message}"):
        GraphDataset(mixed(2) + [bad], GraphSpec(3.0, [1, 6, 8, 14]), LabelKeys(), "train.xyz")


def test_non_finite_positions_in_an_evaluation_file(tmp_path):
    frames = mixed(3)
    frames[1].positions[0] = np.inf
    path = write(tmp_path, "eval.xyz", frames)
    with pytest.raises(DataError, match=r"eval.xyz frame 1: 1 atom position\(s\) are not finite"):
        GraphDataset(ase.io.read(path, ":"), GraphSpec(3.0, [1, 6, 8]), LabelKeys(), path)


def test_singular_periodic_cell_is_a_named_error(tmp_path):
    bad = labelled(Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], pbc=True))
    bad.cell = [[3, 0, 0], [6, 0, 0], [0, 0, 3]]  # a and b parallel
    with pytest.raises(DataError, match=r"train.xyz frame 4: the periodic lattice vectors are"):
        prepare(tmp_path, mixed(4) + [bad])


def test_zero_lattice_vector_along_a_periodic_direction():
    slab = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[3, 3, 0], pbc=[True, True, True])
    with pytest.raises(DataError, match=r"f: lattice vector 2 is zero but pbc\[2\] is True"):
        check_before_search(slab, 3.0, GeometryLimits(), "f: ")
    slab.pbc = [True, True, False]  # a slab: the zero row is no lattice vector
    check_before_search(slab, 3.0, GeometryLimits(), "f: ")


def test_compressed_cell_fails_fast_before_the_search(tmp_path):
    crystal = bulk("C", "diamond", a=3.57, cubic=True)
    crystal.set_cell(crystal.cell / 100, scale_atoms=True)
    frames = mixed(4) + [labelled(crystal)]
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"frame 4: 8 atoms at a number density of .*\(compressed"):
        prepare(tmp_path, frames, r_max=5.0)
    assert time.perf_counter() - start < 1.0


def test_neighbour_estimate_matches_real_crystals_and_is_configurable(tmp_path):
    crystal = bulk("C", "diamond", a=3.57, cubic=True)
    # diamond: 0.176 atoms/Å^3; the estimate is density x sphere, the search agrees
    assert estimated_neighbours(crystal, 5.0) == pytest.approx(8 / 3.57**3 * 4 / 3 * np.pi * 125)
    with pytest.raises(DataError, match=r"data.max_neighbors_per_atom=50\b"):
        prepare(tmp_path, mixed(4) + [labelled(crystal)], r_max=5.0, max_neighbors_per_atom=50)
    prepare(tmp_path, mixed(4) + [labelled(crystal)], r_max=5.0)  # 92 < 500


def test_slab_and_molecule_estimates_stay_small():
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 10))  # 36 Å thick
    slab.pbc = [True, True, False]
    assert estimated_neighbours(slab, 5.0) < 2 * estimated_neighbours(bulk("Cu", cubic=True), 5.0)
    assert estimated_neighbours(molecule("C60"), 5.0) <= 60


# elements and E0s


def test_element_only_in_the_test_file_is_named(tmp_path):
    test = write(tmp_path, "test.xyz", [labelled(molecule("NH3"))])
    with pytest.raises(DataError, match=r"test.xyz frame 0: element\(s\) N occur in no training"):
        prepare(tmp_path, mixed(6), e0s="least_squares", test=test)


def test_element_only_in_the_validation_split_is_named(tmp_path):
    frames = mixed(9) + [labelled(molecule("NH3"))]
    cfg = DataConfig(train=write(tmp_path, "t.xyz", frames), valid_fraction=0.5, split_seed=3)
    # seed 3 puts frame 9, the only one with N, in the validation split
    with pytest.raises(DataError, match=r"t.xyz \(validation split\) frame 9: element\(s\) N "):
        prepare_data(cfg, 3.0, training=POTENTIAL)


def test_least_squares_on_one_composition_is_refused(tmp_path):
    frames = [labelled(molecule("H2O"), energy=-14.0 - 0.1 * i) for i in range(6)]
    with pytest.raises(DataError, match=r"train.xyz: least-squares E0s cannot separate .*H, O"):
        prepare(tmp_path, frames, e0s="least_squares")
    with pytest.raises(DataError, match="'average'"):
        prepare(tmp_path, frames)  # auto: no isolated atoms, so least squares


def test_average_e0s_is_the_mean_energy_per_atom_for_every_element(tmp_path):
    frames = [labelled(molecule("H2O"), energy=-3.0 * (1 + i % 2)) for i in range(6)]
    data = prepare(tmp_path, frames, e0s="average")
    train = data.train.graphs
    mean = np.mean([float(g[keys.ENERGY]) / len(g[keys.NODE_TYPES]) for g in train])
    assert data.derived["atomic_energies"] == pytest.approx([mean, mean])


def test_e0s_mapping_with_an_unknown_element_is_a_config_error():
    with pytest.raises(ValueError, match="'Hx' is not an element symbol"):
        DataConfig(train="a.xyz", e0s={"H": -13.6, "Hx": 1.0})


# requested labels


def test_mace_style_keys_without_data_energy_key_name_what_is_there(tmp_path):
    frames = []
    for atoms in mixed(5):
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    with pytest.raises(DataError) as err:
        prepare(tmp_path, frames)
    message = str(err.value)
    assert message.startswith(f"{tmp_path}/train.xyz: training.energy_weight is 1 but no frame")
    assert "data.energy_key='energy'" in message and "info keys present: REF_energy" in message
    assert (
        "arrays keys present: REF_forces" in message and "set data.energy_key=REF_energy" in message
    )
    prepare(tmp_path, frames, energy_key="REF_energy", forces_key="REF_forces")


def test_no_labels_at_all(tmp_path):
    frames = [molecule(n) for n in ("H2O", "CH4", "CO2", "CH3OH", "H2")]
    with pytest.raises(DataError, match="energy_weight is 1 but no frame has energy"):
        prepare(tmp_path, frames)


def test_forces_requested_but_absent(tmp_path):
    frames = [labelled(a, forces=False) for a in mixed(5)]
    with pytest.raises(DataError, match=r"forces_weight is 10 but no frame has forces under "):
        prepare(tmp_path, frames)
    energies_only = SimpleNamespace(energy_weight=1.0, forces_weight=0.0, stress_weight=0.0)
    prepare(tmp_path, frames, training=energies_only)


def test_stress_requested_on_molecules(tmp_path):
    training = SimpleNamespace(energy_weight=1.0, forces_weight=1.0, stress_weight=1.0)
    with pytest.raises(DataError, match=r"stress_weight is 1 but no frame has stress"):
        prepare(tmp_path, mixed(5), training=training)


# virial


def test_virial_is_stress_minus_virial_over_volume_as_the_model_computes_it():
    model = build_model(
        "equivariant", {"elements": [14], "atomic_energies": [0.0], "r_max": 3.0, "scale": 3.0}
    ).double()
    crystal = bulk("Si", "diamond", a=5.2)
    crystal.rattle(0.1, seed=1)
    crystal.cell[0, 1] = 0.3  # not symmetric: a full 3x3 test
    graph = collate([GraphSpec(3.0, [14]).graph(crystal)])
    out = model(graph, compute_stress=True)
    virial, stress = out[keys.VIRIAL][0].detach().numpy(), out[keys.STRESS][0].detach().numpy()
    crystal.info["REF_virial"] = virial.reshape(-1)
    labels = extract_labels(crystal, LabelKeys(virial="REF_virial"), "")
    assert labels[keys.HAS_STRESS]
    np.testing.assert_allclose(labels[keys.STRESS], stress, rtol=1e-10, atol=1e-14)


def test_stress_label_wins_over_virial_and_virial_needs_a_periodic_cell():
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.info.update(stress=np.arange(1.0, 7.0), virial=np.ones(6))
    labels = extract_labels(crystal, LabelKeys(virial="virial"), "")
    np.testing.assert_array_equal(labels[keys.STRESS].diagonal(), [1, 2, 3])
    crystal.pbc = [True, True, False]
    del crystal.info["stress"]
    with pytest.raises(DataError, match=r"f frame 2: a virial label \(data.virial_key\) needs"):
        extract_labels(crystal, LabelKeys(virial="virial"), "f frame 2: ")


# per-structure weights


def test_weights_are_read_missing_is_one_bad_is_an_error(tmp_path):
    frames = mixed(5)
    frames[0].info["config_weight"] = 2.5
    valid = write(tmp_path, "valid.xyz", mixed(2))
    data = prepare(tmp_path, frames, weight_key="config_weight", valid=valid)
    weights = {f: float(g[keys.WEIGHT]) for f, g in zip(data.train.frame_ids, data.train.graphs)}
    assert weights == {0: 2.5, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    for bad in (-1.0, float("nan"), "heavy"):
        frames[3].info["config_weight"] = bad
        with pytest.raises(DataError, match=r"train.xyz frame 3: atoms.info\['config_weight'\]"):
            prepare(tmp_path, frames, weight_key="config_weight")
    for atoms in frames:
        atoms.info["config_weight"] = 0.0
    with pytest.raises(DataError, match="every training frame has loss weight 0"):
        prepare(tmp_path, frames, weight_key="config_weight", valid=valid)


def _loss_batch(weights):
    graphs = [
        GraphSpec(3.0, [1, 6, 8]).graph(a, extract_labels(a, LabelKeys(), "")) for a in mixed(3)
    ]
    batch = collate(graphs)
    batch[keys.WEIGHT] = torch.tensor(weights, dtype=torch.float64)
    batch[keys.STRESS] = torch.randn(3, 3, 3, dtype=torch.float64)
    batch[keys.HAS_STRESS] = torch.ones(3, dtype=torch.bool)
    pred = {
        keys.ENERGY: batch[keys.ENERGY] + torch.randn(3, dtype=torch.float64),
        keys.FORCES: batch[keys.FORCES] + torch.randn_like(batch[keys.FORCES]),
        keys.STRESS: torch.randn(3, 3, 3, dtype=torch.float64),
    }
    return pred, batch


def test_weights_of_one_give_exactly_the_unweighted_loss():
    torch.manual_seed(0)
    pred, batch = _loss_batch([1.0, 1.0, 1.0])
    total, parts = weighted_loss(pred, batch, 1.0, 10.0, 2.0)
    n = batch[keys.NUM_ATOMS].double()
    assert torch.equal(
        parts["energy"], ((pred[keys.ENERGY] - batch[keys.ENERGY]) / n).pow(2).mean()
    )
    assert torch.equal(parts["forces"], (pred[keys.FORCES] - batch[keys.FORCES]).pow(2).mean())
    assert torch.equal(parts["stress"], (pred[keys.STRESS] - batch[keys.STRESS]).pow(2).mean())
    del batch[keys.WEIGHT]  # graphs without weights weigh 1
    assert torch.equal(weighted_loss(pred, batch, 1.0, 10.0, 2.0)[0], total)


def test_a_weight_scales_its_structure_and_zero_drops_it():
    torch.manual_seed(0)
    pred, batch = _loss_batch([0.0, 3.0, 1.0])
    _, parts = weighted_loss(pred, batch, 1.0, 1.0, 1.0)
    residual = ((pred[keys.ENERGY] - batch[keys.ENERGY]) / batch[keys.NUM_ATOMS]).pow(2)
    assert float(parts["energy"]) == pytest.approx(float(3 * residual[1] + residual[2]) / 4)
    atoms = batch[keys.BATCH] > 0
    per_atom = (pred[keys.FORCES] - batch[keys.FORCES]).pow(2).sum(1)
    w = torch.tensor([0.0, 3.0, 1.0], dtype=torch.float64)[batch[keys.BATCH]]
    expected = (w * per_atom)[atoms].sum() / (3 * w[atoms].sum())
    assert float(parts["forces"]) == pytest.approx(float(expected))


def test_a_batch_of_weight_zero_still_has_a_gradient():
    torch.manual_seed(0)
    pred, batch = _loss_batch([0.0, 0.0, 0.0])
    pred[keys.ENERGY].requires_grad_(True)
    total, _ = weighted_loss(pred, batch, 1.0, 0.0, 0.0)
    assert float(total.detach()) == 0.0 and total.requires_grad  # Lightning needs a graph


def test_stress_key_naming_a_virial_is_a_config_error():
    with pytest.raises(ValueError, match="'REF_virial' names a virial.*data.virial_key=REF_virial"):
        DataConfig(train="a.xyz", stress_key="REF_virial")
