"""Labels of one structure: energy, forces, stress (or a virial), loss weight, properties.

Keys are looked up in ``atoms.info``, then ``atoms.arrays``, then (default names only) the
calculator results an extxyz reader attaches. Absent labels are zeros with their ``has_*``
flag down; malformed or non-finite ones are a :class:`DataError` naming frame and key.
"""

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from eqna.data import keys
from eqna.data.class_labels import encode_label
from eqna.data.errors import DataError

__all__ = ["LabelKeys", "extract_labels", "lookup", "property_labels", "virial_to_stress"]


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live: ``atoms.info``/``atoms.arrays`` keys, else the calculator results."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"
    properties: tuple[str, ...] = ()  # ``atoms.info`` keys of per-structure targets, if any
    virial: str | None = None  # ``atoms.info`` key of a virial (eV), used where no stress is
    weight: str | None = None  # ``atoms.info`` key of a per-structure loss weight (default 1)
    # classifiers: the class (label) names; ``properties[0]`` is then the key of the label
    # (:mod:`eqna.data.class_labels`), encoded as a class index or 0/1 per label
    classes: tuple[str, ...] | None = None
    multilabel: bool = False


def lookup(atoms: Atoms, key: str | None, calc_name: str | None = None):
    """The value under ``key`` in info, arrays or (if ``key == calc_name``) calculator results."""
    if key is None:
        return None
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    calc = atoms.calc
    if calc is not None and key == calc_name and calc_name in getattr(calc, "results", {}):
        return calc.results[calc_name]
    return None


def _as_3x3(value, what: str, where: str) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if value.size == 6:
        return voigt_6_to_full_3x3_stress(value.reshape(6))
    if value.size == 9:
        return value.reshape(3, 3)
    raise DataError(f"{where}{what} has {value.size} components, expected 6 (Voigt) or 9")


def virial_to_stress(virial: np.ndarray, atoms: Atoms, where: str) -> np.ndarray:
    """Stress [3, 3] eV/Å^3 = -virial / V (virial = -dE/d(strain), eV; ASE stress sign,
    positive = tensile); a virial needs a cell periodic in all three directions."""
    if not atoms.pbc.all():
        raise DataError(
            f"{where}a virial label (data.virial_key) needs a cell periodic in all three "
            f"directions to become a stress; this frame has pbc={atoms.pbc.tolist()}"
        )
    return -virial / abs(atoms.cell.volume)


def _info_number(atoms: Atoms, key: str, setting: str, where: str) -> float:
    """``atoms.info[key]`` as a finite float; anything else names the key and its setting."""
    value = atoms.info[key]
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise DataError(
            f"{where}atoms.info[{key!r}] = {value!r} is not a number ({setting})"
        ) from None
    if not np.isfinite(number):
        raise DataError(f"{where}atoms.info[{key!r}] = {value!r} is not finite ({setting})")
    return number


def _weight(atoms: Atoms, key: str | None, where: str) -> np.ndarray:
    """The per-structure loss weight: 1 where the key is absent, else a finite number >= 0."""
    if key is None or key not in atoms.info:
        return np.asarray(1.0)
    weight = _info_number(atoms, key, "data.weight_key", where)
    if weight < 0:
        raise DataError(
            f"{where}atoms.info[{key!r}] = {weight!r}: a loss weight (data.weight_key) must be >= 0"
        )
    return np.asarray(weight)


def _found(atoms: Atoms, label_keys: LabelKeys, where: str) -> dict:
    """The label values present (energy scalar, forces [n, 3], stress [3, 3]) by graph key."""
    n, found = len(atoms), {}
    energy = lookup(atoms, label_keys.energy, "energy")
    forces = lookup(atoms, label_keys.forces, "forces")
    stress = lookup(atoms, label_keys.stress, "stress")
    virial = None if stress is not None else lookup(atoms, label_keys.virial)
    try:
        if energy is not None:
            found[keys.ENERGY] = np.asarray(float(np.asarray(energy).item()))
        if forces is not None:
            found[keys.FORCES] = np.asarray(forces, dtype=np.float64).reshape(n, 3)
        if stress is not None:
            found[keys.STRESS] = _as_3x3(stress, "stress", where)
        if virial is not None:
            virial = _as_3x3(virial, f"virial {label_keys.virial!r}", where)
    except DataError:
        raise
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}malformed label ({err})") from err
    if virial is not None:  # checked finite first: a NaN virial must not read as a NaN stress
        if not np.isfinite(virial).all():
            raise DataError(f"{where}virial label {label_keys.virial!r} is not finite")
        found[keys.STRESS] = virial_to_stress(virial, atoms, where)
    return found


def extract_labels(atoms: Atoms, label_keys: LabelKeys, where: str) -> dict[str, np.ndarray]:
    """Energy [1], forces [n, 3], stress [3, 3], weight, has_* flags; absent labels are zeros.

    A frame with both a stress and a virial label is trained on its stress.
    """
    found = _found(atoms, label_keys, where)
    labels = {
        keys.ENERGY: np.zeros(()),
        keys.FORCES: np.zeros((len(atoms), 3)),
        keys.STRESS: np.zeros((3, 3)),
    }
    for key, flag in (
        (keys.ENERGY, keys.HAS_ENERGY),
        (keys.FORCES, keys.HAS_FORCES),
        (keys.STRESS, keys.HAS_STRESS),
    ):
        if key in found:
            if not np.isfinite(found[key]).all():
                raise DataError(f"{where}{key} label is not finite")
            labels[key] = found[key]
        labels[flag] = np.asarray(key in found)
    labels[keys.WEIGHT] = _weight(atoms, label_keys.weight, where)
    if label_keys.classes is not None:
        key, classes = label_keys.properties[0], label_keys.classes
        labels[keys.PROPERTY] = encode_label(atoms, key, classes, label_keys.multilabel, where)
        labels[keys.HAS_PROPERTY] = np.asarray(True)
    elif label_keys.properties:
        labels[keys.PROPERTY] = property_labels(atoms, label_keys.properties, where)
        labels[keys.HAS_PROPERTY] = np.asarray(True)
    return labels


def property_labels(atoms: Atoms, names: tuple[str, ...], where: str) -> np.ndarray:
    """[t] float64 per-structure targets from ``atoms.info``; missing or non-numbers are errors."""
    values = []
    for name in names:
        if name not in atoms.info:
            present = ", ".join(sorted(atoms.info)) or "none"
            raise DataError(
                f"{where}no atoms.info[{name!r}] (data.target_key); info keys present: {present}"
            )
        number = _info_number(atoms, name, "data.target_key", where)
        values.append(number)
    return np.asarray(values, dtype=np.float64)
