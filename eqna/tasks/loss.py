"""Weighted energy-per-atom / forces / stress loss."""

import torch

from eqna.data import keys


def _weighted_mse(residual: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor):
    """sum_r w_r |residual_r|^2 / (sum_r w_r * components) over the rows where ``mask``.

    With every weight 1 this is the plain mean square of the masked rows, bit for bit; zero
    when nothing is labelled or every weight is 0 (then still differentiable).

    Args:
        residual: [r, ...] one row per structure or atom.
        mask: [r] bool, rows with a label.
        weight: [r] per-row loss weight (the structure's, for an atom).
    """
    if not bool(mask.any()):
        return residual.new_zeros(())
    rows, w = residual[mask], weight[mask].to(residual.dtype)
    squares = rows.pow(2) * w.reshape(-1, *([1] * (rows.dim() - 1)))
    # a batch of weight-0 structures gives 0, still attached to the autograd graph (Lightning
    # refuses a loss without one); weights summing to >= 1 are left exactly as they are
    total = w.sum().clamp_min(torch.finfo(w.dtype).tiny)
    return squares.sum() / (total * rows[0].numel())


def weighted_loss(
    pred: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    energy_weight: float,
    forces_weight: float,
    stress_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w_E <(dE/N)^2> + w_F <|dF|^2>/3 + w_S <|dS|^2>/9, over labelled structures only.

    Each mean is weighted by the structure's ``keys.WEIGHT`` (``data.weight_key``; an atom
    carries its structure's weight); a batch without weights weighs every structure 1.
    Returns the total and its parts (for logging).
    """
    num_atoms = batch[keys.NUM_ATOMS].to(pred[keys.ENERGY].dtype)
    weight = batch.get(keys.WEIGHT, torch.ones_like(num_atoms))
    atoms = batch[keys.BATCH]
    parts = {
        "energy": _weighted_mse(
            (pred[keys.ENERGY] - batch[keys.ENERGY]) / num_atoms,
            batch[keys.HAS_ENERGY].bool(),
            weight,
        ),
        "forces": _weighted_mse(
            pred[keys.FORCES] - batch[keys.FORCES],
            batch[keys.HAS_FORCES].bool()[atoms],
            weight[atoms],
        ),
    }
    total = energy_weight * parts["energy"] + forces_weight * parts["forces"]
    if stress_weight > 0 and keys.STRESS in pred:
        parts["stress"] = _weighted_mse(
            pred[keys.STRESS] - batch[keys.STRESS], batch[keys.HAS_STRESS].bool(), weight
        )
        total = total + stress_weight * parts["stress"]
    return total, parts
