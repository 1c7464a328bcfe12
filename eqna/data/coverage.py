"""Does the data hold what a run needs: the labels its loss weights ask for, and training
frames for every element it will be evaluated on? Checked right after reading, before any
model is built or file written."""

from ase import Atoms
from ase.data import chemical_symbols

from eqna.data import keys
from eqna.data.errors import DataError
from eqna.data.labels import LabelKeys, lookup

__all__ = ["check_elements_trained", "check_requested", "check_weights"]

# loss weight (training section) -> label, the data key naming it, the word a key holds
_REQUESTED = (
    ("energy_weight", "energy", "energy_key", ("energy",)),
    ("forces_weight", "forces", "forces_key", ("force",)),
    ("stress_weight", "stress", "stress_key", ("stress", "virial")),
)


def _has(atoms: Atoms, label: str, label_keys: LabelKeys) -> bool:
    found = lookup(atoms, getattr(label_keys, label), label) is not None
    return found or (label == "stress" and lookup(atoms, label_keys.virial) is not None)


def _any_has(frames, label: str, label_keys: LabelKeys) -> bool:
    if hasattr(frames, "has_label"):  # a store: its index says, without reading any frame
        return frames.has_label(label)
    return any(_has(atoms, label, label_keys) for atoms in frames)


def _present(atoms: Atoms) -> str:
    results = sorted(getattr(atoms.calc, "results", {}) or {})
    arrays = sorted(k for k in atoms.arrays if k not in ("numbers", "positions"))
    parts = [
        f"info keys present: {', '.join(sorted(atoms.info)) or 'none'}",
        f"arrays keys present: {', '.join(arrays) or 'none'}",
    ]
    if results:
        parts.append(f"calculator results: {', '.join(results)}")
    return "; ".join(parts)


def _suggestion(atoms: Atoms, weight: str, key: str, words: tuple[str, ...]) -> str:
    """``set data.energy_key=REF_energy`` when frame 0 has a key that looks like the label."""
    for name in [*atoms.info, *atoms.arrays]:
        for word in words:
            if word in name.lower():
                option = "virial_key" if word == "virial" else key
                return f"set data.{option}={name}"
    return f"set data.{key} to the key holding them, or training.{weight}=0"


def _asked(training, weight: str) -> tuple[str, float]:
    """The loss weight's key and value, or stage two's where only that one is positive."""
    second = f"stage_two_{weight}"
    value = getattr(training, weight)
    staged = getattr(training, "stage_two_fraction", None) is not None
    later = getattr(training, second, None) if staged else None
    return (second, later) if value <= 0 and later else (weight, value)


def check_requested(frames: list[Atoms], label_keys: LabelKeys, training, name: str) -> None:
    """A label the loss weighs (``training.*_weight > 0``) must be in some training frame.

    Args:
        frames: the structures of the training file.
        label_keys: where the labels are looked up.
        training: the ``training`` config section (``energy_weight``, ``forces_weight``,
            ``stress_weight``, and stage two's).
        name: the training file, for the message.

    Raises:
        DataError: naming the file, the key looked for and the keys frame 0 does have.
    """
    for weight, label, key, words in _REQUESTED:
        weight, value = _asked(training, weight)
        if value <= 0 or _any_has(frames, label, label_keys):
            continue
        looked = f"data.{key}={getattr(label_keys, label)!r}"
        if label == "stress" and label_keys.virial is not None:
            looked += f" nor data.virial_key={label_keys.virial!r}"
        raise DataError(
            f"{name}: training.{weight} is {value:g} but no frame has {label} under {looked} "
            f"(frame 0: {_present(frames[0])}); {_suggestion(frames[0], weight, key, words)}"
        )


def check_elements_trained(trained, others: dict) -> None:
    """Every element of the validation and test data occurs in a training frame.

    Args:
        trained: the atomic numbers present in the training frames.
        others: label (file, or split) -> :class:`GraphDataset` to evaluate on.

    Raises:
        DataError: naming the element, where it occurs and that the model would be
            untrained on it (its E0 at best a guess, its interactions never fitted).
    """
    for label, dataset in others.items():
        for frame, graph in zip(dataset.frame_ids, dataset.graphs):
            missing = sorted(set(graph[keys.ATOMIC_NUMBERS].tolist()) - trained)
            if missing:
                symbols = ", ".join(chemical_symbols[z] for z in missing)
                raise DataError(
                    f"{label} frame {frame}: element(s) {symbols} occur in no training frame; "
                    "the model would be untrained on them (E0 a guess, interactions never "
                    "fitted): add training frames holding them, or remove these frames"
                )


def check_weights(weights, key: str | None, name: str) -> None:
    """Some training structure must weigh more than 0 (``data.weight_key``), else nothing
    is fitted. ``weights``: [s] the training structures' loss weights."""
    if key is not None and not (weights > 0).any():
        raise DataError(
            f"{name}: every training frame has loss weight 0 under data.weight_key={key!r}; "
            "nothing would be fitted"
        )
