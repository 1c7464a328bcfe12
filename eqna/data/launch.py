"""Which process this is, read from its launcher's environment (torchrun, SLURM, MPI,
Lightning's own subprocess launcher) before any process group exists."""

from __future__ import annotations

import os

_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")
_LOCAL_RANK_VARIABLES = (
    "LOCAL_RANK",
    "SLURM_LOCALID",
    "MPI_LOCALRANKID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
)
_WORLD_VARIABLES = ("WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def launch_rank() -> int:
    """This process's global rank; 0 for a single process."""
    for name in _RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    if "LOCAL_RANK" in os.environ:  # Lightning's subprocess launcher sets these two
        local = int(os.environ["LOCAL_RANK"])
        node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
        devices = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
        return node * devices + local
    return 0


def launch_local_rank() -> int:
    """This process's rank on its node; 0 for a single process."""
    for name in _LOCAL_RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def launch_world_size() -> int:
    """How many processes were launched together; 1 for a single process."""
    for name in _WORLD_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 1
