"""Lower bounds on what a model that cannot see across a gap gets wrong on molecule pairs.

Used for the card of the shipped long-range set (``tools/make_longrange.py``) and next to the
measured errors of ``tools/compare_pooling.py``. Frames are ASE Atoms of two molecules with
``info["pair"]`` ("A|B"), ``info["interaction_energy"]`` (E_pair - E_A - E_B, eV) and
``info["min_distance"]`` (closest intermolecular atom pair, Å).
"""

import numpy as np
from ase import Atoms


def least_absolute_fit(design: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
    """min_u sum_i weight_i |target_i - design_i . u| (an exact linear programme)."""
    from scipy.optimize import linprog

    m, k = design.shape
    cost = np.concatenate([np.zeros(k), weight])  # variables: u [k], slacks t [m]
    bound = np.block([[-design, -np.eye(m)], [design, -np.eye(m)]])  # |target - design u| <= t
    result = linprog(
        cost,
        A_ub=bound,
        b_ub=np.concatenate([-target, target]),
        bounds=[(None, None)] * k + [(0, None)] * m,
        method="highs",
    )
    if not result.success:
        raise RuntimeError(f"least-absolute fit failed: {result.message}")
    return float(result.fun)


def local_model_floor(frames: list[Atoms], cutoff: float) -> dict:
    """Lower bounds on the energy error, over the frames whose molecules have no atom pair
    within ``cutoff``, of models that cannot see across that gap.

    A strictly local model (receptive field = what message passing reaches from each atom)
    sees each of those frames as two isolated molecules: its interaction energy is at best a
    constant per molecule type, u_A + u_B. A model that also knows the composition of the whole
    structure (which pair it is) but not the separation can at best predict one constant per
    pair type. The least mean absolute deviation of E_int from each form, per atom, bounds the
    MAE of such a model on those frames from below."""
    far = [f for f in frames if f.info["min_distance"] > cutoff]
    e_int = np.array([f.info["interaction_energy"] for f in frames])
    far_abs = np.abs([f.info["interaction_energy"] for f in far])
    summary = {
        "cutoff": cutoff,
        "far_fraction": len(far) / len(frames),
        "mean_abs_e_int_far": float(far_abs.mean()) if far else 0.0,
        "mean_abs_e_int_all": float(np.abs(e_int).mean()),
        "far_share_of_abs_e_int": float(far_abs.sum() / np.abs(e_int).sum()),
        "local_floor_mev_per_atom": 0.0,
        "pair_floor_mev_per_atom": 0.0,
    }
    if not far:
        return summary
    target = np.array([f.info["interaction_energy"] for f in far])
    weight = 1.0 / np.array([len(f) for f in far]) / len(far)
    molecules = sorted({n for f in far for n in f.info["pair"].split("|")})
    pairs = sorted({f.info["pair"] for f in far})
    per_molecule = np.zeros((len(far), len(molecules)))
    per_pair = np.zeros((len(far), len(pairs)))
    for i, frame in enumerate(far):
        for name in frame.info["pair"].split("|"):
            per_molecule[i, molecules.index(name)] += 1.0
        per_pair[i, pairs.index(frame.info["pair"])] = 1.0
    summary["local_floor_mev_per_atom"] = 1000 * least_absolute_fit(per_molecule, target, weight)
    summary["pair_floor_mev_per_atom"] = 1000 * least_absolute_fit(per_pair, target, weight)
    return summary
