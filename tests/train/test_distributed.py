"""Data-parallel training through Lightning's DDP (CPU, gloo): two processes with batch b take
the steps of one process with batch 2b, validation counts every structure once, and only
rank 0 writes the run folder."""

import csv
import os
import socket
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.build import molecule
from helpers import TINY_MODEL

from eqna.data.launch import launch_rank
from eqna.models.io import load_model
from eqna.train.distributed import Shard, ShuffledShard


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _srun_like(command: list, tmp_path) -> subprocess.CompletedProcess:
    """The two tasks ``srun --ntasks-per-node=2`` would start on one node: the same command,
    each with its SLURM variables (Lightning's SLURMEnvironment reads them)."""
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
             "SLURM_NODEID": "0", "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_ID": "4242",
             "SLURM_JOB_NAME": "eqna", "MASTER_PORT": str(_free_port())}  # fmt: skip
    tasks = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                **slurm,
                "SLURM_PROCID": str(r),
                "SLURM_LOCALID": str(r),
                "OMP_NUM_THREADS": "1",
            },
        )  # fmt: skip
        for r in range(2)
    ]
    outputs = [task.communicate(timeout=600) for task in tasks]
    code = max(task.returncode for task in tasks)
    return subprocess.CompletedProcess(command, code, "", "".join(err for _, err in outputs))


def _train(tmp_path, name: str, batch_size: int, launcher: str = "python", **training) -> tuple:
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
    command = ["-m", "eqna.train", str(path), "-o", str(out)]
    if launcher == "srun":
        result = _srun_like([sys.executable, *command], tmp_path)
    else:
        if launcher == "torchrun":
            port = str(_free_port())
            command = ["-m", "torch.distributed.run", "--nproc-per-node", "2",
                       "--master-port", port, *command]  # fmt: skip
        result = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=600,
            cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    model, info = load_model(out / "model.pt")
    assert info["extra"]["epochs"] == 2 and 0 < info["extra"]["train_seconds"] < 300
    with open(out / "logs" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val_forces_mae")]
    return model, rows, result.stderr


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """One process with the doubled batch: what every launch of two processes must equal."""
    return _train(tmp_path_factory.mktemp("single"), "single", batch_size=4)


# python: Lightning starts the second process itself; ddp_spawn: it forks both from the
# first; torchrun and srun start both and Lightning joins them (the README's commands)
LAUNCHES = {
    "ddp": ("python", "ddp"),
    "ddp_spawn": ("python", "ddp_spawn"),
    "torchrun": ("torchrun", "ddp"),
    "srun": ("srun", "ddp"),
}


@pytest.mark.slow
@pytest.mark.parametrize("launch", LAUNCHES)
def test_two_processes_take_the_steps_of_one_with_the_doubled_batch(
    tmp_path, single_process, launch
):
    single, single_rows, _ = single_process
    launcher, strategy = LAUNCHES[launch]
    ddp, ddp_rows, log = _train(
        tmp_path, "ddp", batch_size=2, launcher=launcher, devices=2, strategy=strategy
    )
    assert "distributed_backend=gloo" in log and "All distributed processes registered" in log
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
