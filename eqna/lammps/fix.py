"""An eqna model as a LAMMPS potential through ``fix external`` (``pf/callback``): LAMMPS
integrates, thermostats, barostats, dumps and computes; every force evaluation calls back into
Python, where the model returns the energy, forces, per-atom energies and the virial.

One LAMMPS process (no domain decomposition): the callback sees every atom, owned by that
process. Atoms are handed to the model in the order of their LAMMPS ids, so LAMMPS' own
re-sorting of atoms does not look like motion to the Verlet neighbour list.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.units import fs

from eqna.calculators.ase import EqnaCalculator
from eqna.data import keys
from eqna.lammps.library import lammps_module

LOG = logging.getLogger("eqna")
ERROR_VARIABLE = "eqna_error"  # set to 1 by a failed callback; a fix halt stops the run
MASS_TOLERANCE = 0.1  # amu between a type's mass and the element it is read as
_VOIGT_ROWS, _VOIGT_COLUMNS = [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]  # LAMMPS: xx yy zz xy xz yz
ASE_TO_LAMMPS_VELOCITY = 1000.0 * fs  # ASE velocity units to Angstrom/ps (units metal)


class EqnaPotential:
    """An eqna model attached to the ``fix external`` ``fix_id`` of ``lmp``.

    Args:
        lmp: a ``lammps.lammps`` instance (``units metal``, box and atom types defined).
        model: model.pt path, exported .pt2, zoo name or AtomisticModel (as for
            :class:`EqnaCalculator`).
        fix_id: the ``fix ID group external pf/callback 1 1`` to attach to; created on
            group ``all`` when LAMMPS has no fix of that ID.
        types: element of each LAMMPS type: a list (type 1 first) or a ``{type: symbol}``
            dict; None reads them from the types' masses (nearest element of the model).
        device, dtype, skin, min_distance: as for :class:`EqnaCalculator`.
        atomic_virial: supply per-atom virials (``compute stress/atom``); None: wherever
            they add up to the virial (not for a reciprocal-space model, nor for an export
            without them); True for such a model is an error.

    Attributes:
        calculator: the :class:`EqnaCalculator` doing the work (its ``neighbour_list``).
        error: the exception a callback raised (the run was halted), else None.
    """

    def __init__(self, lmp, model, fix_id: str = "eqna", types=None, device="cpu",
                 dtype=None, skin: float = 0.5, min_distance: float = 0.1,
                 atomic_virial: bool | None = None):  # fmt: skip
        units = lmp.extract_global("units")
        if units != "metal":
            raise ValueError(
                "eqna.lammps needs `units metal` (eV, Angstrom, ps); "
                f"this LAMMPS has `units {units}`"
            )
        ranks = int(lmp.extract_setting("world_size"))
        if ranks != 1:
            raise ValueError(
                f"eqna.lammps runs on one LAMMPS process; this one has {ranks} MPI ranks "
                "(domain decomposition would need the model on ghost atoms)"
            )
        self.lmp, self.fix_id, self.error = lmp, fix_id, None
        self.calculator = EqnaCalculator(model, device, dtype, skin, min_distance)
        unavailable = self.calculator.model.atomic_virial_unavailable
        if atomic_virial and unavailable:
            raise ValueError(f"{unavailable}, so it has no per-atom virial (atomic_virial=False)")
        self.atomic_virial = unavailable is None if atomic_virial is None else bool(atomic_virial)
        self.numbers_of_types = type_numbers(lmp, types, self.calculator.elements)
        if not lmp.has_id("fix", fix_id):
            lmp.command(f"fix {fix_id} all external pf/callback 1 1")
        lmp.command(f"fix_modify {fix_id} energy yes virial yes")
        # without a pair style LAMMPS' communication cutoff is 0 and it warns that ghost
        # atoms are missing; the model's own neighbour list needs none, r_max says what it sees
        lmp.command(f"comm_modify cutoff {self.calculator.r_max}")
        lmp.command("atom_modify sort 0 0.0")  # spatial sorting serves pair styles, not the model
        lmp.command(f"variable {ERROR_VARIABLE} internal 0")
        lmp.command(f"fix {fix_id}_halt all halt 1 v_{ERROR_VARIABLE} > 0 error hard message yes")
        lmp.set_fix_external_callback(fix_id, self._callback, None)

    def atoms(self, nlocal: int, tag, x) -> tuple[Atoms, np.ndarray]:
        """The LAMMPS atoms as ASE atoms in id order, and that order (local indices)."""
        lo, hi, xy, yz, xz, periodic, _ = self.lmp.extract_box()
        cell = np.array(
            [[hi[0] - lo[0], 0.0, 0.0], [xy, hi[1] - lo[1], 0.0], [xz, yz, hi[2] - lo[2]]]
        )
        types = self.lmp.numpy.extract_atom("type")[:nlocal]
        order = np.argsort(np.asarray(tag[:nlocal]), kind="stable")
        atoms = Atoms(
            numbers=self.numbers_of_types[types[order]],
            positions=np.asarray(x[:nlocal])[order] - np.asarray(lo),
            cell=cell,
            pbc=[bool(p) for p in periodic],
        )
        return atoms, order

    def _callback(self, _caller, step, nlocal, tag, x, f):
        try:
            self._compute(nlocal, tag, x, f)
        except Exception as err:  # noqa: BLE001  a ctypes callback cannot raise: halt LAMMPS
            LOG.error("eqna.lammps: step %d: the model failed (%s); LAMMPS halts", step, err)
            self.error = self.error or err  # the first failure: later ones follow from it
            f[:nlocal] = np.nan
            self.lmp.fix_external_set_energy_global(self.fix_id, float("nan"))
            self.lmp.set_internal_variable(ERROR_VARIABLE, 1.0)

    def _compute(self, nlocal, tag, x, f) -> None:
        atoms, order = self.atoms(nlocal, tag, x)
        calc = self.calculator
        out = calc.model(calc.graph(atoms), True, compute_atomic_virial=self.atomic_virial)
        forces = np.empty((nlocal, 3))
        forces[order] = out[keys.FORCES].detach().cpu().double().numpy()
        energies = np.empty(nlocal)
        energies[order] = out[keys.ATOMIC_ENERGIES].detach().cpu().double().numpy()
        virial = out[keys.VIRIAL][0].detach().cpu().double().numpy()  # -dE/d(strain), eV
        f[:nlocal] = forces
        self.lmp.fix_external_set_energy_global(self.fix_id, float(out[keys.ENERGY].detach().sum()))
        self.lmp.fix_external_set_energy_peratom(self.fix_id, energies)
        voigt = virial[_VOIGT_ROWS, _VOIGT_COLUMNS]
        self.lmp.fix_external_set_virial_global(self.fix_id, [float(v) for v in voigt])
        if self.atomic_virial:
            per_atom = np.empty((nlocal, 6))
            tensor = out[keys.ATOMIC_VIRIAL].detach().cpu().double().numpy()  # [n, 3, 3]
            per_atom[order] = tensor[:, _VOIGT_ROWS, _VOIGT_COLUMNS]
            self.lmp.fix_external_set_virial_peratom(self.fix_id, per_atom)

    def raise_error(self) -> None:
        """Raise the exception a callback met, if any (the run it halted is over)."""
        if self.error is not None:
            raise RuntimeError(f"eqna.lammps: the model failed: {self.error}") from self.error


def type_numbers(lmp, types, elements: list[int]) -> np.ndarray:
    """[ntypes + 1] atomic number of each LAMMPS type (index 0 unused).

    Raises:
        ValueError: a type without an element, an element the model was not trained on, or
            a mass that matches no element of the model.
    """
    ntypes = int(lmp.extract_global("ntypes"))
    numbers = np.zeros(ntypes + 1, dtype=np.int64)
    known = ", ".join(chemical_symbols[z] for z in elements)
    if types is None:
        masses = lmp.numpy.extract_atom("mass")
        for t in range(1, ntypes + 1):
            mass = float(masses[t])
            nearest = min(elements, key=lambda z: abs(atomic_masses[z] - mass))
            if abs(atomic_masses[nearest] - mass) > MASS_TOLERANCE:
                raise ValueError(
                    f"LAMMPS type {t} has mass {mass:g}, no element of the model ({known}) "
                    "within 0.1 amu; pass types= (type -> element)"
                )
            numbers[t] = nearest
        return numbers
    mapping = dict(enumerate(types, start=1)) if isinstance(types, (list, tuple)) else dict(types)
    for t in range(1, ntypes + 1):
        if t not in mapping:
            raise ValueError(f"LAMMPS type {t} has no element in types={types!r}")
        symbol = mapping[t]
        if symbol not in atomic_numbers or atomic_numbers[symbol] not in elements:
            raise ValueError(
                f"LAMMPS type {t} is {symbol!r}, not an element of the model ({known})"
            )
        numbers[t] = atomic_numbers[symbol]
    extra = sorted(set(mapping) - set(range(1, ntypes + 1)))
    if extra:
        raise ValueError(f"types={types!r} names types {extra}; this LAMMPS has {ntypes}")
    return numbers


def attach(lmp, model, fix_id: str = "eqna", **options) -> EqnaPotential:
    """Make ``model`` the potential of ``lmp`` (see :class:`EqnaPotential`)."""
    lammps_module()  # the clear ImportError, if LAMMPS is missing
    return EqnaPotential(lmp, model, fix_id, **options)


def atoms_to_lammps(lmp, atoms: Atoms, types: list[str] | None = None) -> list[str]:
    """Create the box and atoms of ``atoms`` in ``lmp`` (``units metal``, ``atom_style
    atomic``; positions rotated into LAMMPS' lower-triangular cell as ASE's Prism does), with
    ASE's masses and velocities; ``boundary`` p where ``atoms.pbc``, else f (atoms inside
    the cell); returns the element of each type (type 1 first)."""
    from ase.calculators.lammps import Prism

    types = types or sorted(set(atoms.get_chemical_symbols()), key=atomic_numbers.get)
    prism = Prism(atoms.cell.array, pbc=atoms.pbc)
    xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
    triclinic = "" if prism.is_skewed() is False and not any((xy, xz, yz)) else f" {xy} {xz} {yz}"
    region = "prism" if triclinic else "block"
    lmp.command("boundary " + " ".join("p" if p else "f" for p in atoms.pbc))
    lmp.command(f"region eqna_box {region} 0 {xhi} 0 {yhi} 0 {zhi}{triclinic} units box")
    lmp.command(f"create_box {len(types)} eqna_box")
    for t, symbol in enumerate(types, start=1):
        lmp.command(f"mass {t} {atomic_masses[atomic_numbers[symbol]]}")
    positions = prism.vector_to_lammps(atoms.positions, wrap=True)
    velocities = prism.vector_to_lammps(atoms.get_velocities()) * ASE_TO_LAMMPS_VELOCITY
    index = {symbol: t for t, symbol in enumerate(types, start=1)}
    lmp.create_atoms(
        len(atoms),
        list(range(1, len(atoms) + 1)),
        [index[s] for s in atoms.get_chemical_symbols()],
        positions.ravel().tolist(),
        velocities.ravel().tolist(),
    )
    return list(types)
