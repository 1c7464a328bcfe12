"""Data-parallel training through Lightning's DDP (CPU, gloo): two processes with batch b take
the steps of one process with batch 2b, validation counts every structure once, and only
rank 0 writes the run folder."""

import csv
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule
from helpers import TINY_MODEL

from eqna.models.io import load_model
from eqna.train.distributed import Shard, ShuffledShard, launch_rank


def _frames(n: int, seed: int) -> list:
    """Methanol geometries with random labels: one atom count, so a per-process mean over a
    batch averages to the mean over the combined batch."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        atoms = molecule("CH3OH")
        atoms.rattle(0.1, seed=seed * 1000 + i)
        atoms.info["energy"] = float(rng.normal()) - 20.0
        atoms.arrays["forces"] = rng.normal(size=(len(atoms), 3))
        out.append(atoms)
    return out


def _train(tmp_path, name: str, batch_size: int, **training) -> tuple:
    ase.io.write(tmp_path / "train.xyz", _frames(24, 0), format="extxyz")
    ase.io.write(tmp_path / "valid.xyz", _frames(7, 1), format="extxyz")  # odd: no padding
    config = {
        "model": dict(TINY_MODEL),
        "data": {"train": str(tmp_path / "train.xyz"), "valid": str(tmp_path / "valid.xyz"),
                 "test_fraction": 0.0, "batch_size": batch_size, "valid_batch_size": 3,
                 "e0s": {"H": -1.0, "C": -5.0, "O": -7.0}},
        "training": {"max_epochs": 2, "progress_bar": False, "seed": 3, "dtype": "float64",
                     "accelerator": "cpu", "early_stopping_patience": None, **training},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "eqna.train", str(path), "-o", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    model, _ = load_model(out / "model.pt")
    with open(out / "logs" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val_forces_mae")]
    return model, rows, result.stderr


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one_with_the_doubled_batch(tmp_path):
    single, single_rows, _ = _train(tmp_path, "single", batch_size=4)
    ddp, ddp_rows, log = _train(tmp_path, "ddp", batch_size=2, devices=2, strategy="ddp")
    assert "Starting with 2 processes" in log and "distributed_backend=gloo" in log
    assert log.count("epoch 2/2") == 1 and "sync_dist" not in log  # one process logs
    for (name, a), b in zip(single.state_dict().items(), ddp.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11, msg=name)
    assert len(ddp_rows) == len(single_rows) == 2
    for a, b in zip(single_rows, ddp_rows):  # every validation structure counted once
        for key in ("val_forces_mae", "val_energy_per_atom_mae", "val_loss"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-9), key
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pt")) == ["model.pt"]


def test_shards_split_the_order_as_a_doubled_batch_would(monkeypatch):
    base = list(range(11))
    for world in (1, 2, 3):
        shares = []
        for rank in range(world):
            monkeypatch.setattr(
                "eqna.train.distributed.rank_and_world", lambda r=rank, w=world: (r, w)
            )
            shares.append(list(ShuffledShard(base, 11)))
            assert len(ShuffledShard(base, 11)) == len(shares[-1])
        assert len({len(s) for s in shares}) == 1  # same number of steps on every process
        interleaved = [s[i] for i in range(len(shares[0])) for s in shares]
        assert interleaved[:11] == base  # padding (repeats) only at the end
        evaluated = []
        for rank in range(world):
            monkeypatch.setattr(
                "eqna.train.distributed.rank_and_world", lambda r=rank, w=world: (r, w)
            )
            evaluated += list(Shard(11))
        assert sorted(evaluated) == base  # every structure exactly once


def test_launch_rank_reads_the_launchers_variables(monkeypatch):
    for name in ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert launch_rank() == 5
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert launch_rank() == 3
