"""Per-structure predictions and the extxyz file that carries them beside the labels.

``eqna-evaluate MODEL DATA --write-xyz OUT.xyz`` writes every input structure with its labels
untouched and the model's predictions under prefixed keys, as ``mace_eval_configs`` does, so
that the same file can be scored again (``--energy-key eqna_energy``) or plotted by any tool:

    info["eqna_energy"]       total energy, eV
    arrays["eqna_energies"]   per-atom energies [n], eV (they sum to the energy)
    arrays["eqna_forces"]     forces [n, 3], eV/Å
    info["eqna_stress"]       stress of 3D-periodic cells, eV/Å³, ASE sign, Voigt order
                              (xx, yy, zz, yz, xz, xy), as ``atoms.get_stress()`` returns it
    info["eqna_<target>"]     each target of a property model
    info["eqna_<label key>"]  a classifier's predicted class name (multilabel: 0/1 per label,
                              each probability >= 0.5)
    info["eqna_probabilities"] its probability per class (label), in the model's class order
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from eqna.data import keys

DEFAULT_PREFIX = "eqna_"


@dataclass
class StructurePrediction:
    """What a model predicts for one structure (float64, eV units; None: not predicted).

    Attributes:
        energy: total energy, eV.
        atomic_energies: [n] per-atom energies, eV.
        forces: [n, 3] eV/Å.
        stress: [3, 3] eV/Å³, only for cells periodic in all three directions.
        property: [t] targets of a property model, in their data units.
        probabilities: [C] a classifier's softmax (multi-class) or sigmoid per label.
    """

    energy: float | None = None
    atomic_energies: np.ndarray | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    property: np.ndarray | None = None
    probabilities: np.ndarray | None = None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def split_predictions(pred: dict, batch: dict) -> list[StructurePrediction]:
    """One :class:`StructurePrediction` per graph of ``batch``, in batch order.

    Args:
        pred: the model's prediction dict for ``batch`` (:mod:`eqna.data.keys`).
        batch: the collated input; its ``num_atoms`` [g] splits the per-atom fields.
    """
    counts = batch[keys.NUM_ATOMS].tolist()
    num_graphs = len(counts)
    if keys.PROPERTY in pred:
        return [StructurePrediction(property=p) for p in _numpy(pred[keys.PROPERTY])]
    if keys.PROBABILITIES in pred:
        return [StructurePrediction(probabilities=p) for p in _numpy(pred[keys.PROBABILITIES])]
    energies = _numpy(pred[keys.ENERGY])
    atomic = np.split(_numpy(pred[keys.ATOMIC_ENERGIES]), np.cumsum(counts)[:-1])
    forces = np.split(_numpy(pred[keys.FORCES]), np.cumsum(counts)[:-1])
    periodic = batch[keys.PBC].all(dim=1).tolist()
    stress = _numpy(pred[keys.STRESS]) if keys.STRESS in pred else [None] * num_graphs
    return [
        StructurePrediction(
            energy=float(energies[i]),
            atomic_energies=atomic[i],
            forces=forces[i],
            stress=stress[i] if periodic[i] else None,
        )
        for i in range(num_graphs)
    ]


def with_predictions(
    atoms: Atoms,
    prediction: StructurePrediction,
    prefix: str = DEFAULT_PREFIX,
    target_names: Sequence[str] = (),
    classes: Sequence[str] = (),
    multilabel: bool = False,
) -> Atoms:
    """A copy of ``atoms`` with its labels (info, arrays, calculator results) kept and the
    predictions added under ``prefix`` keys (see the module docstring); ``classes`` name a
    classifier's outputs."""
    if not prefix:
        raise ValueError("--prefix must not be empty: the predictions would overwrite the labels")
    out = atoms.copy()
    if atoms.calc is not None:  # Atoms.copy drops the calculator, which holds read labels
        out.calc = SinglePointCalculator(out, **atoms.calc.results)
    if prediction.energy is not None:
        out.info[f"{prefix}energy"] = prediction.energy
        out.arrays[f"{prefix}energies"] = prediction.atomic_energies
        out.arrays[f"{prefix}forces"] = prediction.forces
    if prediction.stress is not None:
        out.info[f"{prefix}stress"] = full_3x3_to_voigt_6_stress(prediction.stress)
    if prediction.property is not None:
        if len(target_names) == len(prediction.property):
            for name, value in zip(target_names, prediction.property):
                out.info[f"{prefix}{name}"] = float(value)
        else:  # a model whose config does not name its targets
            out.info[f"{prefix}property"] = prediction.property
    if prediction.probabilities is not None:
        p = prediction.probabilities
        key = f"{prefix}{target_names[0] if target_names else 'class'}"
        out.info[key] = (p >= 0.5).astype(int) if multilabel else str(classes[int(p.argmax())])
        out.info[f"{prefix}probabilities"] = p
    return out


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(part)`` on a file beside ``path``, then rename it to ``path``: a reader
    never sees a half-written file, and an error leaves any older file in place."""
    path = Path(path)
    part = path.with_name(f"{path.name}.part")
    try:
        write(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def write_predictions_xyz(
    path: str | Path,
    structures: Sequence[Atoms],
    predictions: Sequence[StructurePrediction],
    prefix: str = DEFAULT_PREFIX,
    target_names: Sequence[str] = (),
    classes: Sequence[str] = (),
    multilabel: bool = False,
) -> Path:
    """Write ``structures`` in their order, each with its prediction, as one extxyz file."""
    if len(structures) != len(predictions):
        raise ValueError(f"{len(structures)} structures but {len(predictions)} predictions")
    frames = [
        with_predictions(atoms, prediction, prefix, target_names, classes, multilabel)
        for atoms, prediction in zip(structures, predictions)
    ]
    return write_atomically(path, lambda part: ase.io.write(part, frames, format="extxyz"))
