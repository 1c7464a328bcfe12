"""CGCNN-like and FlowGNN-like models: invariance of property predictions (incl. supercells),
FlowGNN invertibility and log-determinant, and the shared physics suite for energy variants."""

import ase.build
import ase.io
import numpy as np
import pytest
import torch

from eqna.data.collate import collate, to_device
from eqna.data.graph import GraphSpec, atoms_to_graph
from eqna.models.io import build_model
from eqna.models.zoo import architecture_path
from eqna.testing import ModelTestSuite, random_orthogonal, triclinic_crystal

ELEMENTS = [8, 14, 22]
PROPERTY = {"elements": ELEMENTS, "target_mean": [0.5], "target_std": [2.0]}
ENERGY = {
    "elements": ELEMENTS,
    "output": "energy",
    "atomic_energies": [-2.0, -5.0, -7.0],
    "scale": 1.3,
    "shift": -0.2,
    "max_num_neighbors": None,
    "normalization": "layer",
    "r_max": 4.0,
    "num_channels": 16,
    "num_edge_basis": 8,
}
COMBOS = [
    (family, atom, edge)
    for family in ("cgcnn", "flowgnn")
    for atom in ("properties", "onehot", "learned")
    for edge in ("gaussian", "bessel", "atom_gaussian")
]


def _perturbed(model, scale=0.3, seed=0):
    """Random weights everywhere (the coupling starts at the identity, which tests nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def _property_model(family, atom="properties", edge="gaussian", **extra):
    torch.manual_seed(0)
    hparams = {
        **PROPERTY,
        "atom_features": atom,
        "edge_features": edge,
        "num_channels": 16,
        "num_layers": 2,
        "head_hidden": 16,
        **extra,
    }
    return _perturbed(build_model(family, hparams).double().eval())


def _properties(model, structures):
    graphs = [atoms_to_graph(a, model.r_max, ELEMENTS) for a in structures]
    batch = to_device(collate(graphs), "cpu", torch.float64)
    return model(batch)["property"].detach().numpy()


def _crystal(seed=0):
    atoms = triclinic_crystal(ELEMENTS, seed)
    return atoms.repeat((2, 1, 1))  # 8 atoms, three elements


@pytest.mark.parametrize("family,atom,edge", COMBOS)
def test_property_invariance(family, atom, edge):
    model = _property_model(family, atom, edge)
    atoms = _crystal()
    reference = _properties(model, [atoms])
    rng = np.random.default_rng(1)
    moved = atoms.copy()
    rotation = random_orthogonal(rng, proper=False)  # rotation with reflection
    moved.positions = moved.positions @ rotation.T + rng.normal(size=3)
    moved.cell = moved.cell.array @ rotation.T
    permuted = moved[rng.permutation(len(moved))]
    supercell = atoms.repeat((1, 2, 2))
    out = _properties(model, [moved, permuted, supercell])
    assert np.abs(reference).max() > 1e-3
    np.testing.assert_allclose(out, np.repeat(reference, 3, axis=0), rtol=1e-9, atol=1e-10)


def test_extensive_pooling_doubles_with_the_cell():
    model = _property_model("cgcnn", pooling="sum")
    atoms = _crystal()
    one, two = _properties(model, [atoms, atoms.repeat((2, 1, 1))])
    np.testing.assert_allclose(two, 2 * one, rtol=1e-10)


def test_batch_norm_property_model_in_eval_equals_single():
    model = _property_model("cgcnn", normalization="batch")
    structures = [_crystal(0), _crystal(1)]
    together = _properties(model, structures)
    single = np.concatenate([_properties(model, [a]) for a in structures])
    np.testing.assert_allclose(together, single, rtol=1e-10)


def test_flowgnn_is_invertible_with_exact_logdet():
    model = _property_model("flowgnn")
    atoms = _crystal()
    batch = to_device(collate([atoms_to_graph(atoms, model.r_max, ELEMENTS)]), "cpu", torch.float64)
    network = model.network
    graph = network.graph(batch)
    h0 = network.atom_features(batch["node_types"])
    h, logdet = network.encode(h0, graph)
    assert (h - h0).abs().max() > 1e-2  # the map is not the identity
    torch.testing.assert_close(network.decode(h, graph), h0, rtol=0, atol=1e-10)
    jacobian = torch.autograd.functional.jacobian(
        lambda x: network.encode(x.reshape(h0.shape), graph)[0].reshape(-1), h0.reshape(-1)
    )
    expected = torch.linalg.slogdet(jacobian).logabsdet
    torch.testing.assert_close(logdet.sum(), expected, rtol=1e-8, atol=1e-8)
    out = model(batch)
    torch.testing.assert_close(out["flow_logdet"], logdet.sum().reshape(1))


def test_max_num_neighbors_keeps_the_nearest():
    model = _property_model("cgcnn", max_num_neighbors=4)
    atoms = _crystal()
    batch = to_device(collate([atoms_to_graph(atoms, model.r_max, ELEMENTS)]), "cpu", torch.float64)
    counts = torch.bincount(model.network.graph(batch)["edge_index"][0], minlength=len(atoms))
    assert counts.max() == 4
    pre = to_device(
        collate([atoms_to_graph(atoms, model.r_max, ELEMENTS, max_num_neighbors=4)]),
        "cpu",
        torch.float64,
    )
    torch.testing.assert_close(model(pre)["property"], model(batch)["property"])


def test_energy_output_rejects_neighbour_truncation_and_batch_norm():
    with pytest.raises(ValueError, match="max_num_neighbors"):
        build_model("cgcnn", {**ENERGY, "max_num_neighbors": 12})
    with pytest.raises(ValueError, match="normalization"):
        build_model("cgcnn", {**ENERGY, "normalization": "batch"})


class _EnergySuite(ModelTestSuite):
    # float32: the weights are perturbed to O(0.1) and the energies sum per-atom terms of
    # ~10 eV, so forces carry ~2e-5 relative rounding (measured 1.8e-5 on the slab)
    tol32 = 5e-5

    def make_model(self, dtype):
        torch.manual_seed(0)
        return _perturbed(build_model(self.family, dict(self.hparams)), 0.1).to(dtype).eval()


class TestCGCNNEnergy(_EnergySuite):
    family = "cgcnn"
    hparams = {**ENERGY, "edge_features": "atom_gaussian", "atom_features": "onehot"}


class TestFlowGNNEnergy(_EnergySuite):
    family = "flowgnn"
    hparams = {**ENERGY, "edge_features": "bessel"}


def test_rocksalt_supercell_intensive():
    model = _property_model("flowgnn")
    atoms = ase.build.bulk("TiO", "rocksalt", a=4.2)
    atoms.rattle(0.02, seed=3)
    one, big = _properties(model, [atoms, atoms.repeat(2)])
    np.testing.assert_allclose(big, one, rtol=1e-9)


def _labelled_crystals(n=24, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = ase.build.bulk("TiO", "rocksalt", a=4.0 + 0.4 * rng.random())
        atoms.rattle(0.05, seed=k)
        atoms.info["gap"] = float(atoms.cell.volume) / 10.0  # a learnable per-structure target
        frames.append(atoms)
    return frames


def test_property_training_end_to_end(tmp_path):
    from eqna.models.io import load_model
    from eqna.train.config import load_config
    from eqna.train.run import train

    ase.io.write(tmp_path / "crystals.xyz", _labelled_crystals())
    overrides = [
        f"data.train={tmp_path / 'crystals.xyz'}",
        "data.target_key=gap",
        "data.batch_size=8",
        "training.max_epochs=3",
        "training.max_time_minutes=null",
        "training.progress_bar=false",
        "model.num_channels=16",
        "model.num_layers=2",
        "model.r_max=5.0",
    ]
    config = load_config(architecture_path("flowgnn"), overrides)
    metrics = train(config, tmp_path / "run")
    assert np.isfinite(metrics["property_mae"])
    model, payload = load_model(tmp_path / "run" / "model.pt")
    assert payload["family"] == "flowgnn" and model.output == "property"
    assert payload["hparams"]["target_std"][0] > 0


def test_missing_or_bad_target_is_a_clear_error(tmp_path):
    from eqna.data.datasets import DataError, GraphDataset, LabelKeys

    frames = _labelled_crystals(3)
    del frames[1].info["gap"]
    with pytest.raises(DataError, match=r"x\.xyz frame 1: no atoms.info\['gap'\]"):
        GraphDataset(frames, GraphSpec(5.0, [8, 22]), LabelKeys(properties=("gap",)), "x.xyz")
    frames[1].info["gap"] = "n/a"
    with pytest.raises(DataError, match="frame 1.*is not a number"):
        GraphDataset(frames, GraphSpec(5.0, [8, 22]), LabelKeys(properties=("gap",)), "x.xyz")


def test_config_ties_property_output_to_target_key():
    from eqna.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="data.target_key: model.output is 'property'"):
        load_config(architecture_path("cgcnn"), ["data.target_key=null"])
    with pytest.raises(ConfigError, match="data.target_key is set"):
        load_config(architecture_path("equivariant"), ["data.target_key=gap"])


def test_cgcnn_folder_layout(tmp_path):
    from eqna.data.datasets import DataError, read_structures

    frames = _labelled_crystals(3)
    rows = []
    for k, atoms in enumerate(frames):
        ase.io.write(tmp_path / f"mp-{k}.cif", atoms)
        rows.append(f"mp-{k},{atoms.info['gap']}")
    (tmp_path / "id_prop.csv").write_text("\n".join(rows) + "\n")
    read = read_structures(str(tmp_path))
    assert [a.info["id"] for a in read] == ["mp-0", "mp-1", "mp-2"]
    assert read[2].info["target"] == pytest.approx(frames[2].info["gap"])
    (tmp_path / "id_prop.csv").write_text("mp-0,1.0\nmp-9,2.0\n")
    with pytest.raises(DataError, match="line 2: structure file .*mp-9.cif not found"):
        read_structures(str(tmp_path))
    (tmp_path / "id_prop.csv").write_text("mp-0,abc\n")
    with pytest.raises(DataError, match="line 1: target 'abc' is not a number"):
        read_structures(str(tmp_path))


def test_evaluate_cli_on_a_property_model(tmp_path, capsys):
    from eqna.evaluate.cli import main as evaluate_main
    from eqna.train.config import load_config
    from eqna.train.run import train

    ase.io.write(tmp_path / "crystals.xyz", _labelled_crystals(16))
    overrides = [
        f"data.train={tmp_path / 'crystals.xyz'}",
        "data.target_key=gap",
        "training.max_epochs=1",
        "training.max_time_minutes=null",
        "training.progress_bar=false",
        "model.num_channels=8",
        "model.num_layers=1",
        "model.r_max=5.0",
    ]
    train(load_config(architecture_path("cgcnn"), overrides), tmp_path / "run")
    code = evaluate_main(
        [
            str(tmp_path / "run" / "model.pt"),
            str(tmp_path / "crystals.xyz"),
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert code == 0
    assert "| property |" in capsys.readouterr().out
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calculator_refuses_a_property_model(tmp_path):
    from eqna.calculators import EqnaCalculator
    from eqna.models.io import save_model

    hparams = {**PROPERTY, "num_channels": 8, "num_layers": 1}
    save_model(tmp_path / "m.pt", build_model("cgcnn", hparams), "cgcnn", hparams)
    with pytest.raises(TypeError, match="m.pt: a cgcnn property model"):
        EqnaCalculator(str(tmp_path / "m.pt"))
