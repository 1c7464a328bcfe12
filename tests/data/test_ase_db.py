"""Structures from an ASE database: eqna-db keeps everything a training reads, data.select
picks rows, and a run on the database sees exactly the batches of the file it came from."""

import ase.db
import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from eqna.data.ase_db import read_ase_db
from eqna.data.datasets import DataError, read_structures, resolve_path
from eqna.data.prepare import make_loader, prepare_data
from eqna.data.to_db import main as eqna_db
from eqna.train.sections import DataConfig

RNG = np.random.default_rng(0)


def mace_style_frames(n: int = 8) -> list:
    """Rattled Si cells whose labels live in info and arrays (REF_*), plus config types."""
    frames = []
    for i in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=i % 2 == 0)
        atoms.rattle(0.05, seed=i)
        atoms.info.update(
            REF_energy=-5.4 * len(atoms) + 0.01 * i,
            REF_stress=RNG.normal(size=(3, 3)) * 0.01,  # 3x3 in info: not per-atom data
            config_type="bulk" if i < 5 else "strained",
            weight=1.0 + i,
            formula_like_key="x",
        )
        atoms.arrays["REF_forces"] = RNG.normal(size=(len(atoms), 3))
        frames.append(atoms)
    return frames


def as_db(tmp_path, frames, name="data.db"):
    xyz = tmp_path / f"{name}.xyz"
    ase.io.write(xyz, frames, format="extxyz")
    db = tmp_path / name
    assert eqna_db([str(xyz), "-o", str(db)]) == 0
    return xyz, db


def test_eqna_db_keeps_info_arrays_and_calculator_results(tmp_path):
    frames = mace_style_frames()
    frames[0].calc = SinglePointCalculator(frames[0], energy=-1.5, forces=np.ones((8, 3)))
    xyz, db = as_db(tmp_path, frames)
    back, original = read_structures(str(db)), ase.io.read(xyz, ":")
    assert len(back) == len(original)
    for row_id, (a, b) in enumerate(zip(back, original), start=1):
        assert a.info.pop("id") == row_id
        assert a.info.keys() == b.info.keys()
        for key, value in b.info.items():
            np.testing.assert_array_equal(a.info[key], value)
        assert a.arrays.keys() == b.arrays.keys()
        for key, value in b.arrays.items():
            np.testing.assert_array_equal(a.arrays[key], value)
        np.testing.assert_array_equal(a.cell, b.cell)
        assert (a.pbc == b.pbc).all()
        assert (a.calc is None) == (b.calc is None)
    assert back[0].calc.results["energy"] == -1.5
    np.testing.assert_array_equal(back[0].calc.results["forces"], np.ones((8, 3)))


def _config(spec: str, **data) -> DataConfig:
    keys = {"energy_key": "REF_energy", "forces_key": "REF_forces", "stress_key": "REF_stress"}
    return DataConfig(train=spec, valid_fraction=0.25, e0s="least_squares", **keys, **data)


def _batches(cfg, dtype=torch.float64):
    data = prepare_data(cfg, 3.0)
    loader = make_loader(data.train, batch_size=3, dtype=dtype, shuffle=True, seed=4)
    return data, [batch for _ in range(2) for batch in loader]


def test_a_database_gives_the_batches_and_statistics_of_its_file(tmp_path):
    xyz, db = as_db(tmp_path, mace_style_frames())
    from_file, file_batches = _batches(_config(str(xyz), weight_key="weight"))
    from_db, db_batches = _batches(_config(str(db), weight_key="weight"))
    assert from_db.derived == from_file.derived
    assert len(db_batches) == len(file_batches) > 0
    for a, b in zip(db_batches, file_batches):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert from_db.train.frame_ids == from_file.train.frame_ids


def test_select_takes_the_matching_rows_of_every_database(tmp_path):
    frames = mace_style_frames()
    _, db = as_db(tmp_path, frames)
    chosen = read_structures(str(db), "config_type=strained")
    assert [a.info["id"] for a in chosen] == [6, 7, 8]
    assert len(read_ase_db(db, "natoms=8,config_type=bulk")) == 3
    data = prepare_data(_config(str(db), select="config_type=bulk", test=str(db)), 3.0)
    assert len(data.train) + len(data.valid) == 5
    assert len(data.test) == 5


def test_bad_selection_or_file_names_it(tmp_path):
    xyz, db = as_db(tmp_path, mace_style_frames(3))
    with pytest.raises(DataError, match=r"data\.db \(data\.select 'natoms>100'\): no rows match"):
        read_structures(str(db), "natoms>100")
    with pytest.raises(DataError, match=r"data\.select 'natoms<x'\): cannot be read.*number"):
        read_structures(str(db), "natoms<x")
    with pytest.raises(DataError, match=r"needs an ASE database"):
        read_structures(str(xyz), "natoms=8")
    with pytest.raises(DataError, match=r"data\.select \('natoms=8'\) selects rows.*none of"):
        prepare_data(_config(str(xyz), select="natoms=8"), 3.0)
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    with pytest.raises(DataError, match=r"broken\.db: cannot be read as an ASE database"):
        read_structures(str(broken))
    empty = tmp_path / "empty.db"
    ase.db.connect(str(empty)).count()  # creates an empty database
    with pytest.raises(DataError, match=r"empty\.db: no rows"):
        read_structures(str(empty))


def test_eqna_db_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path, capsys):
    xyz, db = as_db(tmp_path, mace_style_frames(2))
    assert eqna_db([str(xyz), "-o", str(db)]) == 2
    assert "exists (pass --force" in capsys.readouterr().err
    assert eqna_db([str(xyz), "-o", str(db), "--force"]) == 0
    bad = tmp_path / "bad.xyz"
    bad.write_text(xyz.read_text() + "3\nnot extxyz\nSi 0 0\n")
    target = tmp_path / "new.db"
    assert eqna_db([str(bad), "-o", str(target)]) == 2
    assert "bad.xyz frame 2: cannot be converted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if "new" in p.name) == []
    assert eqna_db([str(xyz), "-o", str(tmp_path / "out.xyz")]) == 2


def test_embedded_molecules_through_a_database_keep_their_isolated_atoms(tmp_path):
    source = resolve_path("embedded:xtb_molecules.xyz")
    db = tmp_path / "xtb.db"
    assert eqna_db([str(source), "-o", str(db)]) == 0
    cfg = {"max_train_frames": 30, "e0s": "auto", "valid_fraction": 0.2}
    from_db = prepare_data(DataConfig(train=str(db), **cfg), 4.0)
    from_file = prepare_data(DataConfig(train=str(source), **cfg), 4.0)
    assert from_db.derived == from_file.derived
    assert len(from_db.train) == len(from_file.train)
