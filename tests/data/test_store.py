"""Packed stores (eqna-pack): the batches and statistics of the files they came from, read
lazily; refused when packed for another cutoff, label keys or eqna version; a killed pack is
never mistaken for a complete store."""

import json
import logging

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from eqna.data import pack as pack_module
from eqna.data.datasets import DataError, read_structures
from eqna.data.lazy import LazyGraphDataset
from eqna.data.pack import main as eqna_pack
from eqna.data.pack import pack
from eqna.data.prepare import make_loader, prepare_data
from eqna.data.store import MANIFEST, STRUCTURES, Store, StoreKeys
from eqna.train.sections import DataConfig

pytest.importorskip("h5py")
RNG = np.random.default_rng(3)
KEYS = {"energy_key": "REF_energy", "forces_key": "REF_forces", "stress_key": "REF_stress"}


def frames(n: int = 12) -> list[Atoms]:
    """Isolated atoms, molecules and periodic cells (some with stress) with REF_* labels."""
    out = []
    for symbol, energy in (("H", -13.6), ("C", -1029.5), ("O", -2041.0), ("Si", -107.0)):
        atoms = Atoms(symbol)
        atoms.info.update(REF_energy=energy, config_type="IsolatedAtom")
        out.append(atoms)
    for i in range(n):
        if i % 3 == 2:
            atoms = bulk("Si", "diamond", a=5.43)
            atoms.info["REF_stress"] = RNG.normal(size=6) * 0.01
        else:
            atoms = molecule(["H2O", "CH4", "CH3OH", "CO2"][i % 4])
        atoms.rattle(0.05, seed=i)
        atoms.info["REF_energy"] = float(RNG.normal()) - 10.0 * len(atoms)
        atoms.info["config_type"] = "md" if i % 2 else "relax"
        atoms.arrays["REF_forces"] = RNG.normal(size=(len(atoms), 3))
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "train.xyz"
    ase.io.write(path, frames(), format="extxyz")
    return path


def _config(train, **data) -> DataConfig:
    return DataConfig(train=str(train), valid_fraction=0.25, test_fraction=0.25, **KEYS, **data)


def _batches(prepared, dtype=torch.float64):
    out = []
    for name in ("train", "valid", "test"):
        loader = make_loader(getattr(prepared, name), 3, dtype, shuffle=name == "train", seed=2)
        out += [batch for _ in range(2) for batch in loader]
    return out


def _assert_same_batches(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


@pytest.mark.parametrize("cutoff", [None, 3.0])
def test_a_store_gives_the_batches_and_statistics_of_its_file(tmp_path, source, cutoff):
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS), cutoff=cutoff)
    from_file = prepare_data(_config(source), 3.0)
    from_store = prepare_data(_config(tmp_path / "store"), 3.0)
    assert isinstance(from_store.train, LazyGraphDataset)
    assert from_store.derived == from_file.derived  # E0s from the isolated atoms, scale, ...
    for name in ("train", "valid", "test"):
        assert list(getattr(from_store, name).frame_ids) == getattr(from_file, name).frame_ids
    _assert_same_batches(_batches(from_store), _batches(from_file))
    _assert_same_batches(_batches(from_store, torch.float32), _batches(from_file, torch.float32))


def test_least_squares_and_separate_valid_store(tmp_path, source):
    pack([str(source)], tmp_path / "train", StoreKeys(**KEYS))
    valid = tmp_path / "valid.xyz"
    ase.io.write(valid, frames(4)[4:], format="extxyz")
    pack([str(valid)], tmp_path / "valid", StoreKeys(**KEYS))
    options = {"e0s": "least_squares", "valid": None}
    from_file = prepare_data(_config(source, **{**options, "valid": str(valid)}), 3.0)
    store = _config(tmp_path / "train", **{**options, "valid": str(tmp_path / "valid")})
    from_store = prepare_data(store, 3.0)
    assert from_store.derived == from_file.derived
    _assert_same_batches(_batches(from_store), _batches(from_file))


def test_worker_processes_pack_the_same_store(tmp_path, source):
    pack([str(source)], tmp_path / "serial", StoreKeys(**KEYS), cutoff=3.0)
    pack([str(source)], tmp_path / "parallel", StoreKeys(**KEYS), cutoff=3.0, workers=2)
    import h5py

    with (
        h5py.File(tmp_path / "serial" / STRUCTURES) as a,
        h5py.File(tmp_path / "parallel" / STRUCTURES) as b,
    ):
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name][()], b[name][()])


def test_read_back_structures_carry_labels_origin_and_config_type(tmp_path, source):
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    stored, original = read_structures(str(tmp_path / "store")), ase.io.read(source, ":")
    assert len(stored) == len(original) == 16
    for k in (0, 5, 15):
        a, b = stored[k], original[k]
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.numbers, b.numbers)
        assert a.info["REF_energy"] == b.info["REF_energy"]
        assert a.info["config_type"] == b.info["config_type"]
    assert stored.where(5) == f"{source} frame 5"


def test_a_store_for_another_cutoff_keys_or_version_is_refused(tmp_path, source):
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS), cutoff=3.0)
    with pytest.raises(DataError, match=r"neighbour lists for r_max 3 Å.*r_max is 4 Å.*--cutoff 4"):
        prepare_data(_config(tmp_path / "store"), 4.0)
    wrong_keys = {**KEYS, "energy_key": "energy"}
    with pytest.raises(DataError, match=r"other label keys \(data.energy_key: store 'REF_energy'"):
        prepare_data(DataConfig(train=str(tmp_path / "store"), **wrong_keys), 3.0)
    manifest = tmp_path / "store" / MANIFEST
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**meta, "eqna_version": "0.0.1"}))
    with pytest.raises(DataError, match=r"packed by eqna 0\.0\.1, this is eqna"):
        prepare_data(_config(tmp_path / "store"), 3.0)
    manifest.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DataError, match=r"not an eqna-store version 1 store"):
        prepare_data(_config(tmp_path / "store"), 3.0)


def test_a_killed_pack_leaves_an_incomplete_store(tmp_path, source, monkeypatch):
    write = pack_module._Writer.write
    calls = []

    def dies_on_second_chunk(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise KeyboardInterrupt  # what SIGINT does mid-pack
        write(self, chunk)

    monkeypatch.setattr(pack_module, "CHUNK", 5)
    monkeypatch.setattr(pack_module._Writer, "write", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == []
    (tmp_path / "store" / f".{STRUCTURES}.partial").write_bytes(b"")  # as SIGKILL leaves it
    with pytest.raises(DataError, match=r"an incomplete store \(no manifest.json: the pack was"):
        prepare_data(_config(tmp_path / "store"), 3.0)
    with pytest.raises(DataError, match=r"incomplete store"):
        Store(tmp_path / "store")


def test_eqna_pack_command(tmp_path, source, capsys):
    out = tmp_path / "store"
    args = [str(source), "-o", str(out), "--cutoff", "3", *("--energy-key", "REF_energy")]
    args += ["--forces-key", "REF_forces", "--stress-key", "REF_stress"]
    assert eqna_pack(args) == 0
    assert "wrote 16 structures" in capsys.readouterr().out
    assert eqna_pack(args) == 2
    assert "a complete store exists (pass --force" in capsys.readouterr().err
    assert eqna_pack([*args, "--force"]) == 0
    bad = frames(2)
    bad[5].positions[1] = bad[5].positions[0]  # two atoms at one place
    ase.io.write(tmp_path / "bad.xyz", bad, format="extxyz")
    assert eqna_pack([str(tmp_path / "bad.xyz"), "-o", str(tmp_path / "bad")]) == 2
    assert "bad.xyz frame 5: atoms 0 (C) and 1 (H) are 0 Å apart" in capsys.readouterr().err
    assert not (tmp_path / "bad" / MANIFEST).exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert eqna_pack([str(source), "-o", str(tmp_path / "other")]) == 2
    assert "a non-empty folder that is not a store" in capsys.readouterr().err


def test_eqna_train_from_a_store_matches_the_file(tmp_path):
    import yaml
    from helpers import tiny_config

    from eqna.data.datasets import resolve_path
    from eqna.train.cli import main as train_main

    source = resolve_path("embedded:xtb_molecules.xyz")
    first = ase.io.read(source, ":70")
    ase.io.write(tmp_path / "small.xyz", first, format="extxyz")
    pack([str(tmp_path / "small.xyz")], tmp_path / "store", cutoff=4.0)
    metrics = {}
    for name, train in (("file", tmp_path / "small.xyz"), ("store", tmp_path / "store")):
        config = tiny_config(max_epochs=1)
        config["data"] = {"train": str(train), "batch_size": 4}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        out = tmp_path / f"run_{name}"
        assert train_main([str(tmp_path / f"{name}.yaml"), "-o", str(out)]) == 0
        metrics[name] = json.loads((out / "test_metrics.json").read_text())
    numbers = {k: v for k, v in metrics["file"].items() if k.endswith(("_mae", "_rmse"))}
    assert numbers and {k: metrics["store"][k] for k in numbers} == pytest.approx(numbers, rel=1e-6)


def test_worker_processes_load_the_same_batches(tmp_path, source):
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS), cutoff=3.0)
    for train in (source, tmp_path / "store"):
        data = prepare_data(_config(train), 3.0)
        batches = {}
        for workers in (0, 2):
            loader = make_loader(data.train, 3, torch.float32, True, seed=5, workers=workers)
            batches[workers] = [batch for _ in range(2) for batch in loader]
        _assert_same_batches(batches[2], batches[0])


def test_statistics_from_a_seeded_subsample(tmp_path, source):
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    config = _config(tmp_path / "store", statistics_frames=3)  # E0s: the isolated atoms
    subsample = prepare_data(config, 3.0)
    full = prepare_data(_config(tmp_path / "store"), 3.0)
    again = prepare_data(config, 3.0)
    assert subsample.derived == again.derived  # seeded
    assert subsample.derived["scale"] != full.derived["scale"]
    everything = _config(tmp_path / "store", statistics_frames=10**6)
    assert prepare_data(everything, 3.0).derived == full.derived
    assert len(subsample.train) == len(full.train)  # only the statistics are subsampled


def test_eqna_evaluate_reads_a_store_lazily_with_the_files_metrics(tmp_path, source, monkeypatch):
    from helpers import EVALUATE_HPARAMS

    from eqna.data import lazy
    from eqna.evaluate.cli import main as evaluate_main
    from eqna.models.io import build_model, save_model

    hparams = {**EVALUATE_HPARAMS, "elements": [1, 6, 8, 14], "r_max": 3.0,
               "atomic_energies": [-13.6, -1029.5, -2041.0, -107.0]}  # fmt: skip
    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", build_model("equivariant", hparams), "equivariant", hparams)
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    keys = [
        "--energy-key",
        "REF_energy",
        "--forces-key",
        "REF_forces",
        "--stress-key",
        "REF_stress",
    ]
    built = []
    monkeypatch.setattr(lazy.LazyGraphDataset, "__init__", _recording(built))
    for name, data in (("file", source), ("store", tmp_path / "store")):
        assert evaluate_main([str(tmp_path / "m.pt"), str(data), *keys,
                              "--json", str(tmp_path / f"{name}.json")]) == 0  # fmt: skip
    assert len(built) == 1  # the store's dataset was the lazy one
    assert json.loads((tmp_path / "store.json").read_text()) == json.loads(
        (tmp_path / "file.json").read_text()
    )


def _recording(built):
    original = LazyGraphDataset.__init__

    def init(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    return init


def test_statistics_are_kept_in_the_store_for_the_next_run(tmp_path, source, monkeypatch):
    from eqna.data import store_statistics

    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    first = prepare_data(_config(tmp_path / "store"), 3.0)
    cached = list((tmp_path / "store" / "statistics").glob("*.npz"))
    assert len(cached) == 1

    def no_pass(*args, **kwargs):
        raise AssertionError("the summary was computed again")

    monkeypatch.setattr(store_statistics, "summary_row", no_pass)
    assert prepare_data(_config(tmp_path / "store"), 3.0).derived == first.derived
    with pytest.raises(AssertionError, match="computed again"):  # another split: another key
        prepare_data(_config(tmp_path / "store", split_seed=1), 3.0)
    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))  # packed again: cache dropped
    assert not (tmp_path / "store" / "statistics").exists()


def test_other_processes_of_a_launch_wait_for_the_first_ones_statistics(
    tmp_path, source, monkeypatch
):
    import threading

    from eqna.data import store_statistics

    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    passes = []
    real_row = store_statistics.summary_row

    def counted_row(*args):
        passes.append(threading.current_thread().name)
        return real_row(*args)

    monkeypatch.setattr(store_statistics, "summary_row", counted_row)
    monkeypatch.setattr(store_statistics, "_POLL_SECONDS", 0.01)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # this process is the node's second: it waits
    prepared = {}
    waiting = threading.Thread(
        target=lambda: prepared.update(second=prepare_data(_config(tmp_path / "store"), 3.0)),
        name="second",
    )
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive() and not passes  # no summary of its own while the first computes
    monkeypatch.setenv("LOCAL_RANK", "0")
    prepared["first"] = prepare_data(_config(tmp_path / "store"), 3.0)
    waiting.join(30)
    assert not waiting.is_alive()
    assert set(passes) == {"MainThread"}  # one pass, by the first process
    assert prepared["second"].derived == prepared["first"].derived


def test_a_process_waiting_on_a_read_only_store_computes_the_statistics(
    tmp_path, source, monkeypatch, caplog
):
    from eqna.data import store_statistics

    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    monkeypatch.setattr(store_statistics, "_writable", lambda folder: False)
    monkeypatch.setattr(store_statistics, "WAIT_SECONDS", 0.1)  # a wait would end, and log
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with caplog.at_level(logging.INFO, logger="eqna"):
        assert prepare_data(_config(tmp_path / "store"), 3.0).derived
    assert "waiting for the statistics" not in caplog.text  # it did not wait at all


@pytest.mark.parametrize("block", [1, 2, 1 << 16])
def test_elements_of_a_subset_read_in_blocks(tmp_path, source, block):
    from eqna.data.lazy import StoreFrames

    pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
    store, atoms = Store(tmp_path / "store"), read_structures(str(source))
    rng = np.random.default_rng(block)
    for _ in range(5):
        chosen = rng.choice(len(atoms), size=rng.integers(1, 6))  # repeats, any order
        expected = {int(z) for i in chosen for z in atoms[i].numbers}
        assert StoreFrames(store, chosen).elements(block) == expected


@pytest.mark.parametrize("packed", [False, True], ids=["extxyz", "store"])
def test_a_bootstrap_resamples_the_training_split_only(tmp_path, source, packed):
    path = source
    if packed:
        pack([str(source)], tmp_path / "store", StoreKeys(**KEYS))
        path = tmp_path / "store"
    plain = prepare_data(_config(path), 3.0)
    boot = prepare_data(_config(path, bootstrap_seed=5), 3.0)
    ids, original = list(boot.train.frame_ids), list(plain.train.frame_ids)
    assert len(ids) == len(original) and set(ids) <= set(original)
    assert len(set(ids)) < len(ids)  # drawn with replacement (all distinct: p = n!/n^n)
    assert len(boot.train) == len(ids)
    for name in ("valid", "test"):
        assert list(getattr(boot, name).frame_ids) == list(getattr(plain, name).frame_ids)
    assert list(prepare_data(_config(path, bootstrap_seed=5), 3.0).train.frame_ids) == ids
    assert list(prepare_data(_config(path, bootstrap_seed=7), 3.0).train.frame_ids) != ids
    with pytest.raises(DataError, match="bootstrap_seed=6, drew no frame holding them"):
        prepare_data(_config(path, bootstrap_seed=6), 3.0)  # this resample lost the Si frames
