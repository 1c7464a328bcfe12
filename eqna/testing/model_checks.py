"""Physics checks that any eqna model must pass, for tests and for users' own models.

Every check takes a potential (:class:`eqna.models.AtomisticModel`: ``model(batch,
compute_stress=True)`` returns energy [g], atomic energies [n], forces [n, 3] and stress
[g, 3, 3]) and a list of ``ase.Atoms`` built from the model's elements. A check raises
``AssertionError`` naming the quantity, the structure and the error; otherwise it returns the
largest error it saw.
Relative errors are ``max|a - b| / max(max|a|, max|b|)`` over one quantity of one structure.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.collate import collate, to_device

PER_ATOM = (keys.ATOMIC_ENERGIES, keys.FORCES)
_FLOOR = 1e-30


def model_elements(model) -> list[int]:
    """Atomic numbers the model knows, in its type order."""
    return model.elements


def model_cutoff(model) -> float:
    """The model's neighbour radius r_max, Å."""
    return model.r_max


def model_dtype_device(model) -> tuple[torch.dtype, torch.device]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), torch.device("cpu")


def predict(
    model,
    structures: Sequence[Atoms],
    dtype: torch.dtype | None = None,
    compute_stress: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Evaluate ``structures`` as one batch; returns per-structure float64 numpy outputs.

    Each dict holds energy [], atomic energies [n], forces [n, 3] and (with ``compute_stress``)
    stress [3, 3]. ``dtype`` defaults to the model's floating-point dtype.
    """
    model_dtype, device = model_dtype_device(model)
    batch = collate([model.graph_spec.graph(a) for a in structures])
    out = model(to_device(batch, device, dtype or model_dtype), compute_stress=compute_stress)
    ptr = batch[keys.PTR].tolist()
    names = [keys.ENERGY, *PER_ATOM] + ([keys.STRESS] if compute_stress else [])
    out = {k: out[k].detach().cpu().to(torch.float64).numpy() for k in names}
    results = []
    for g in range(len(structures)):
        result = {k: out[k][ptr[g] : ptr[g + 1]] for k in PER_ATOM}
        result.update({k: out[k][g] for k in names if k not in PER_ATOM})
        results.append(result)
    return results


def relative_error(actual, expected) -> float:
    """max|actual - expected| / max(max|actual|, max|expected|); 0 when both are zero."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(np.abs(actual).max(initial=0.0), np.abs(expected).max(initial=0.0))
    diff = np.abs(actual - expected).max(initial=0.0)
    return 0.0 if diff == 0.0 else float(diff / max(scale, _FLOOR))


def compare_outputs(actual: Mapping, expected: Mapping, tol: float, what: str) -> float:
    """Relative error per key present in both; raises AssertionError above ``tol``."""
    worst = 0.0
    for key in expected:
        if key not in actual:
            continue
        err = relative_error(actual[key], expected[key])
        if not err < tol:
            raise AssertionError(f"{what}: {key} relative error {err:.3e} >= tol {tol:.1e}")
        worst = max(worst, err)
    return worst


def _label(atoms: Atoms, index: int) -> str:
    return f"structure {index} ({atoms.get_chemical_formula()}, pbc={atoms.pbc.tolist()})"


def random_orthogonal(rng: np.random.Generator, proper: bool = True) -> np.ndarray:
    """Haar-random 3x3 rotation (det +1), or an improper one (det -1, rotation x reflection)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


def _rotated(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """r -> R r for positions and lattice vectors (rows), pbc kept per lattice vector."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    out.positions = atoms.positions @ rotation.T
    return out


def check_o3_equivariance(
    model,
    structures: Sequence[Atoms],
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-10,
    seed: int = 0,
) -> float:
    """E invariant, F -> R F, stress -> R sigma R^T under a rotation and an improper rotation."""
    rng = np.random.default_rng(seed)
    reference = predict(model, structures, dtype)
    worst = 0.0
    for proper in (True, False):
        rot = random_orthogonal(rng, proper)
        outputs = predict(model, [_rotated(a, rot) for a in structures], dtype)
        for i, (out, ref) in enumerate(zip(outputs, reference, strict=True)):
            expected = dict(ref)
            expected[keys.FORCES] = ref[keys.FORCES] @ rot.T
            expected[keys.STRESS] = rot @ ref[keys.STRESS] @ rot.T
            kind = "rotation" if proper else "improper rotation"
            what = f"O(3) ({kind}, {dtype}) {_label(structures[i], i)}"
            worst = max(worst, compare_outputs(out, expected, tol, what))
    return worst


def check_translation(
    model,
    structures: Sequence[Atoms],
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-10,
    seed: int = 0,
) -> float:
    """All outputs unchanged when every atom moves by the same (large, random) vector."""
    shift = np.random.default_rng(seed).normal(scale=5.0, size=3)
    moved = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.positions += shift
        moved.append(atoms)
    reference = predict(model, structures, dtype)
    worst = 0.0
    for i, (out, ref) in enumerate(zip(predict(model, moved, dtype), reference, strict=True)):
        worst = max(
            worst, compare_outputs(out, ref, tol, f"translation {_label(structures[i], i)}")
        )
    return worst


def check_permutation(
    model,
    structures: Sequence[Atoms],
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-10,
    seed: int = 0,
) -> float:
    """Reordering atoms permutes per-atom outputs and leaves energy and stress unchanged."""
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(a)) for a in structures]
    reference = predict(model, structures, dtype)
    outputs = predict(model, [a[p] for a, p in zip(structures, perms, strict=True)], dtype)
    worst = 0.0
    for i, (out, ref, perm) in enumerate(zip(outputs, reference, perms, strict=True)):
        expected = {k: v[perm] if k in PER_ATOM else v for k, v in ref.items()}
        worst = max(
            worst, compare_outputs(out, expected, tol, f"permutation {_label(structures[i], i)}")
        )
    return worst


def _require_float64(model) -> None:
    if model_dtype_device(model)[0] != torch.float64:
        raise ValueError("finite-difference checks need a float64 model (model.double())")


def _displaced(atoms: Atoms, index: int, axis: int, step: float) -> Atoms:
    copy = atoms.copy()
    copy.positions[index, axis] += step
    return copy


def check_forces_finite_difference(
    model, structures: Sequence[Atoms], h: float = 1e-4, tol: float = 1e-6
) -> float:
    """Forces equal -dE/dr by central differences in float64, every atom and direction."""
    _require_float64(model)
    worst = 0.0
    for s, atoms in enumerate(structures):
        displaced = [
            _displaced(atoms, k // 3, k % 3, sign * h)
            for k in range(3 * len(atoms))
            for sign in (1.0, -1.0)
        ]
        energies = np.array([o[keys.ENERGY] for o in predict(model, displaced)])
        numeric = -(energies[0::2] - energies[1::2]).reshape(len(atoms), 3) / (2.0 * h)
        analytic = {keys.FORCES: predict(model, [atoms])[0][keys.FORCES]}
        what = f"finite differences (h={h}) {_label(atoms, s)}"
        worst = max(worst, compare_outputs(analytic, {keys.FORCES: numeric}, tol, what))
    return worst


def _strained(atoms: Atoms, a: int, b: int, step: float) -> Atoms:
    """Apply the symmetric strain eps_ab = eps_ba (total step split over both if a != b)."""
    eps = np.zeros((3, 3))
    eps[a, b] += 0.5 * step
    eps[b, a] += 0.5 * step
    copy = atoms.copy()
    copy.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return copy


def check_stress_finite_difference(
    model, structures: Sequence[Atoms], h: float = 1e-5, tol: float = 1e-6
) -> float:
    """Stress = (1/V) dE/d(strain) by central differences, fully periodic structures only."""
    _require_float64(model)
    periodic = [a for a in structures if a.pbc.all()]
    if not periodic:
        raise ValueError("stress finite differences need a structure periodic in 3D")
    pairs = [(a, b) for a in range(3) for b in range(a, 3)]
    worst = 0.0
    for s, atoms in enumerate(periodic):
        strained = [_strained(atoms, a, b, sign * h) for a, b in pairs for sign in (1.0, -1.0)]
        energies = np.array([o[keys.ENERGY] for o in predict(model, strained)])
        numeric = np.zeros((3, 3))
        for k, (a, b) in enumerate(pairs):
            value = (energies[2 * k] - energies[2 * k + 1]) / (2.0 * h * atoms.get_volume())
            numeric[a, b] = numeric[b, a] = value
        analytic = {keys.STRESS: predict(model, [atoms])[0][keys.STRESS]}
        what = f"finite differences (h={h}) {_label(atoms, s)}"
        worst = max(worst, compare_outputs(analytic, {keys.STRESS: numeric}, tol, what))
    return worst


def check_batch_equals_single(
    model, structures: Sequence[Atoms], dtype: torch.dtype = torch.float64, tol: float = 1e-10
) -> float:
    """One batch of all structures (mixed sizes and periodicity) equals one call per structure."""
    batched = predict(model, structures, dtype)
    worst = 0.0
    for i, atoms in enumerate(structures):
        single = predict(model, [atoms], dtype)[0]
        worst = max(worst, compare_outputs(batched[i], single, tol, f"batched {_label(atoms, i)}"))
    return worst


def check_isolated_atom(
    model,
    atomic_energies: Mapping[int, float],
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-12,
) -> float:
    """A lone atom (no neighbours, free or in a periodic box wider than r_max) has energy E0.

    Args:
        atomic_energies: the reference energy E0 of each element, by atomic number; the model's
            scale and shift must not change it. Forces and stress must be zero.
    """
    box = 1.5 * model_cutoff(model)
    lone = [Atoms(numbers=[z], positions=[[0.1, -0.2, 0.3]]) for z in atomic_energies]
    boxed = [
        Atoms(numbers=[z], positions=[[0.1, -0.2, 0.3]], cell=np.eye(3) * box, pbc=True)
        for z in atomic_energies
    ]
    worst = 0.0
    for atoms, out in zip(lone + boxed, predict(model, lone + boxed, dtype), strict=True):
        e0 = float(atomic_energies[int(atoms.numbers[0])])
        err = max(abs(out[keys.ENERGY] - e0), abs(out[keys.ATOMIC_ENERGIES][0] - e0))
        err /= max(1.0, abs(e0))
        rest = max(np.abs(out[keys.FORCES]).max(), np.abs(out[keys.STRESS]).max())
        if not (err <= tol and rest <= tol):
            raise AssertionError(
                f"isolated {atoms.get_chemical_formula()} (pbc {atoms.pbc.all()}): energy "
                f"{float(out[keys.ENERGY])!r}, E0 {e0!r} (relative error {err:.3e}, tol "
                f"{tol:.1e}); max |force|, |stress| {rest:.3e}"
            )
        worst = max(worst, err)
    return worst


def _trimer(numbers: Sequence[int], distance: float, direction: np.ndarray) -> Atoms:
    """Atoms B - A ... C on a line: A-B bonded (1.2 Å), A-C at ``distance``, B-C further."""
    positions = np.array([np.zeros(3), -1.2 * direction, distance * direction])
    return Atoms(numbers=list(numbers), positions=positions + [0.3, -0.1, 0.2])


def check_cutoff_smoothness(
    model,
    delta: float = 1e-6,
    energy_tol: float = 1e-9,
    force_tol: float = 1e-7,
    seed: int = 0,
    local: bool = True,
) -> float:
    """Energy and forces are continuous when a neighbour crosses r_max (float64 model).

    Atom C is moved from r_max - delta to r_max + delta from atom A (bonded to B); the energy
    may change by less than ``energy_tol`` (eV), forces by less than ``force_tol`` (eV/Å), and
    (for a ``local`` model) just outside r_max the energy must equal that of C far away (and
    differ from it at r_max - 0.5, or the check would be vacuous). Models with interactions
    beyond r_max (neural atoms) pass ``local=False``. Returns the energy jump.
    """
    _require_float64(model)
    elements, r_max = model_elements(model), model_cutoff(model)
    numbers = [elements[0], elements[1 % len(elements)], elements[-1]]
    direction = np.random.default_rng(seed).normal(size=3)
    direction /= np.linalg.norm(direction)
    distances = (r_max - delta, r_max + delta, r_max + 1.0, r_max - 0.5)
    inside, outside, far, near = predict(model, [_trimer(numbers, d, direction) for d in distances])
    if near[keys.ENERGY] == far[keys.ENERGY]:
        raise AssertionError("vacuous: the model ignores a neighbour at r_max - 0.5 Å")
    jump = abs(inside[keys.ENERGY] - outside[keys.ENERGY])
    force_jump = np.abs(inside[keys.FORCES] - outside[keys.FORCES]).max()
    beyond = abs(outside[keys.ENERGY] - far[keys.ENERGY])
    beyond_tol = 1e-12 * max(1.0, abs(far[keys.ENERGY])) if local else float("inf")
    if not (jump < energy_tol and force_jump < force_tol and beyond <= beyond_tol):
        raise AssertionError(
            f"not smooth at r_max = {r_max}: energy jump {jump:.3e} eV (tol {energy_tol:.0e}), "
            f"force jump {force_jump:.3e} eV/Å (tol {force_tol:.0e}), E(r_max + delta) - "
            f"E(far) = {beyond:.3e} eV"
        )
    return float(jump)


def check_save_load_roundtrip(
    model, family: str, hparams: dict, structures: Sequence[Atoms], directory, tol: float = 1e-14
) -> float:
    """``save_model`` then ``load_model`` (in the saved dtype) gives the same predictions.

    Args:
        family: the registry name ``model`` was built from; hparams: its builder arguments.
        directory: an existing folder for the model file (e.g. pytest's ``tmp_path``).
        tol: relative; on CPU the predictions are in practice bitwise identical.
    """
    from eqna.models.io import load_model, save_model

    dtype, device = model_dtype_device(model)
    path = Path(directory) / "roundtrip.pt"
    save_model(path, model, family, hparams)
    loaded, _ = load_model(path, device=device)
    if model_dtype_device(loaded)[0] != dtype:
        raise AssertionError(f"saved a {dtype} model, loaded {model_dtype_device(loaded)[0]}")
    pairs = zip(predict(loaded, structures), predict(model, structures), strict=True)
    return max(
        compare_outputs(new, old, tol, f"reloaded model on {_label(structures[i], i)}")
        for i, (new, old) in enumerate(pairs)
    )
