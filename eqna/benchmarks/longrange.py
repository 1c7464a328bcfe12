"""A lower bound on what a model that cannot see across a gap gets wrong on molecule pairs.

Used for the card of the shipped long-range set (``tools/make_longrange.py``) and next to the
measured errors of ``tools/compare_pooling.py``. Frames are ASE Atoms of two molecules with
``info["pair"]`` ("A|B"), ``info["interaction_energy"]`` (E_pair - E_A - E_B, eV) and
``info["min_distance"]`` (closest intermolecular atom pair, Å) and ``info["geometry_a"]``,
``info["geometry_b"]`` (which geometry of each molecule the frame uses).
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
    """The lowest energy MAE any strictly local model can reach on the frames whose molecules
    have no atom pair within ``cutoff`` (a lower bound, exact for these frames).

    A model whose receptive field ends at the cutoff sees such a frame as two isolated molecules:
    it predicts E = g(A) + h(B), each term a function of one molecule's geometry. Its error on
    the frame is c_A + c_B - E_int with c_A = g(A) - E_A depending only on A's geometry, so with
    ``info["geometry_a"]`` / ``["geometry_b"]`` naming the geometry of each molecule (frames share
    geometries), the least mean absolute value of c_A + c_B - E_int over all constants c per
    (molecule, geometry), per atom, bounds the MAE of every such model from below."""
    far = [f for f in frames if f.info["min_distance"] > cutoff]
    e_int = np.array([f.info["interaction_energy"] for f in frames])
    far_abs = np.abs([f.info["interaction_energy"] for f in far])
    summary = {
        "cutoff": cutoff,
        "far_frames": len(far),
        "far_fraction": len(far) / len(frames),
        "mean_abs_e_int_far": float(far_abs.mean()) if far else 0.0,
        "mean_abs_e_int_all": float(np.abs(e_int).mean()),
        "far_share_of_abs_e_int": float(far_abs.sum() / np.abs(e_int).sum()),
        "local_floor_mev_per_atom": float("nan"),
    }
    if not far:
        return summary
    missing = [i for i, f in enumerate(far) if not {"geometry_a", "geometry_b"} <= f.info.keys()]
    if missing:
        raise KeyError(
            f"{len(missing)} frames lack info['geometry_a'/'geometry_b'] (needed to bound a local "
            "model's error); regenerate the set with tools/make_longrange.py"
        )
    columns: dict[tuple[str, int], int] = {}
    design = []
    for frame in far:
        row = {}
        for name, geometry in zip(
            frame.info["pair"].split("|"), (frame.info["geometry_a"], frame.info["geometry_b"])
        ):
            column = columns.setdefault((name, int(geometry)), len(columns))
            row[column] = row.get(column, 0.0) + 1.0
        design.append(row)
    matrix = np.zeros((len(far), len(columns)))
    for i, row in enumerate(design):
        for column, count in row.items():
            matrix[i, column] = count
    target = np.array([f.info["interaction_energy"] for f in far])
    weight = 1.0 / np.array([len(f) for f in far]) / len(far)
    summary["local_floor_mev_per_atom"] = 1000 * least_absolute_fit(matrix, target, weight)
    return summary
