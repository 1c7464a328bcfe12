"""Class labels of classifiers: names, the numbers they become, and the classes of a data set.

A multi-class label (``model.output: classification``) is ``atoms.info[key]``: an integer or a
class name; it becomes its index in the class list ([1] float). A multilabel label
(``multilabel``) is a list of 0/1 (or booleans), one per label ([L] float). The class list is
``data.classes`` (names, or a count C meaning the integers 0..C-1), else every value seen in
the training frames (sorted: numerically if all are integers), and is saved in the model, so
evaluation maps labels exactly as training did; a label outside it is a :class:`DataError`.
"""

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms

from eqna.data.errors import DataError

OUTPUTS = ("classification", "multilabel")
"""``model.output`` values of classifiers."""


def class_name(value, key: str, where: str) -> str:
    """A multi-class label as its canonical name: integers (also 3.0) as digits, booleans as
    True / False, text stripped."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}atoms.info[{key!r}] is an empty class name")
        return value.strip()
    array = np.asarray(value)
    if array.size == 1 and array.dtype.kind == "b":  # extxyz reads a bare T / F as a boolean
        return str(bool(array.item()))
    if array.size == 1 and array.dtype.kind in "iu":
        return str(int(array.item()))
    if array.size == 1 and array.dtype.kind == "f" and float(array.item()).is_integer():
        return str(int(array.item()))
    raise DataError(
        f"{where}atoms.info[{key!r}] = {value!r} is not a class label (an integer or a class "
        "name; a list of 0/1 is a multilabel label: model.output=multilabel)"
    )


def multilabel_vector(value, key: str, num_labels: int | None, where: str) -> np.ndarray:
    """A multilabel label as [L] float 0/1; ``num_labels`` None accepts any length."""
    array = np.asarray(value)
    if array.ndim != 1 or array.dtype.kind not in "iubf":
        raise DataError(
            f"{where}atoms.info[{key!r}] = {value!r} is not a list of 0/1 (a multilabel label)"
        )
    if not np.isin(array, (0, 1)).all():
        raise DataError(
            f"{where}atoms.info[{key!r}] = {value!r}: multilabel entries must be 0 or 1"
        )
    if num_labels is not None and array.size != num_labels:
        raise DataError(
            f"{where}atoms.info[{key!r}] has {array.size} labels; the model has {num_labels} "
            "(data.classes)"
        )
    return array.astype(np.float64)


def declared_classes(classes: int | Sequence | None) -> tuple[str, ...] | None:
    """``data.classes`` as names: a count C is the integers 0..C-1."""
    if classes is None:
        return None
    if isinstance(classes, int):
        return tuple(str(i) for i in range(classes))
    return tuple(class_name(c, "data.classes", "") for c in classes)


def encode_label(
    atoms: Atoms, key: str, classes: tuple[str, ...], multilabel: bool, where: str
) -> np.ndarray:
    """The label of ``atoms`` as numbers: [1] class index, or [L] 0/1."""
    if key not in atoms.info:
        present = ", ".join(sorted(atoms.info)) or "none"
        raise DataError(
            f"{where}no atoms.info[{key!r}] (data.target_key); info keys present: {present}"
        )
    value = atoms.info[key]
    if multilabel:
        return multilabel_vector(value, key, len(classes), where)
    name = class_name(value, key, where)
    if name not in classes:
        shown = ", ".join(classes[:20]) + (" ..." if len(classes) > 20 else "")
        raise DataError(
            f"{where}atoms.info[{key!r}] = {value!r} is not one of the model's classes ({shown})"
        )
    return np.asarray([classes.index(name)], dtype=np.float64)


def infer_classes(frames: Iterable[Atoms], key: str, multilabel: bool, source: str) -> tuple:
    """The class names of the training frames: every distinct label, sorted (numerically if
    all are integers); multilabel: ``"0".."L-1"`` from the first frame's length, which every
    frame must share."""
    names, length = set(), None
    for i, atoms in enumerate(frames):
        where = f"{source} frame {i}: "
        if key not in atoms.info:
            continue  # reported with the file's other label errors when the graphs are built
        if multilabel:
            vector = multilabel_vector(atoms.info[key], key, length, where)
            length = vector.size
        else:
            names.add(class_name(atoms.info[key], key, where))
    if multilabel:
        if length is None:
            raise DataError(f"{source}: no frame has atoms.info[{key!r}] (data.target_key)")
        return tuple(str(i) for i in range(length))
    if len(names) < 2:
        raise DataError(
            f"{source}: atoms.info[{key!r}] has {len(names)} distinct class(es) in the training "
            "frames; a classifier needs at least 2 (or declare them: data.classes)"
        )
    numeric = all(n.lstrip("-").isdigit() for n in names)
    return tuple(sorted(names, key=int) if numeric else sorted(names))


def class_counts(targets: np.ndarray | None, num_classes: int, multilabel: bool):
    """(training structures per class, or positives per label; labelled structures) from the
    encoded labels [s, 1] or [s, L] (``training.class_weights: balanced``)."""
    if targets is None or not len(targets):
        return [0] * num_classes, 0
    if multilabel:
        return targets.sum(0).round().astype(int).tolist(), len(targets)
    index = targets[:, 0].round().astype(int)
    return np.bincount(index, minlength=num_classes).tolist(), len(targets)
