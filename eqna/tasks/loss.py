"""Weighted energy-per-atom / forces / stress loss: squared error or Huber."""

import torch

from eqna.data import keys


def huber(residual: torch.Tensor, delta: float) -> torch.Tensor:
    """Elementwise x^2 for |x| <= delta, 2 delta |x| - delta^2 beyond: the squared error for
    small residuals (so loss weights mean what they mean for mse), linear with slope 2 delta
    for large ones; value and derivative continuous (2x torch's ``huber_loss``)."""
    small = residual.abs() <= delta
    return torch.where(small, residual.pow(2), 2 * delta * residual.abs() - delta**2)


def _weighted_mean(residual: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, delta=None):
    """sum_r w_r penalty(residual_r) / (sum_r w_r * components) over the rows where ``mask``;
    the penalty is the square (``delta`` None) or :func:`huber` with ``delta``.

    With every weight 1 this is the plain mean of the masked rows, bit for bit; zero when
    nothing is labelled or every weight is 0 (then still differentiable).

    Args:
        residual: [r, ...] one row per structure or atom.
        mask: [r] bool, rows with a label.
        weight: [r] per-row loss weight (the structure's, for an atom).
        delta: Huber transition in the residual's units; None: squared error.
    """
    if not bool(mask.any()):
        return residual.new_zeros(())
    rows, w = residual[mask], weight[mask].to(residual.dtype)
    penalty = rows.pow(2) if delta is None else huber(rows, delta)
    penalty = penalty * w.reshape(-1, *([1] * (rows.dim() - 1)))
    # a batch of weight-0 structures gives 0, still attached to the autograd graph (Lightning
    # refuses a loss without one); weights summing to >= 1 are left exactly as they are
    total = w.sum().clamp_min(torch.finfo(w.dtype).tiny)
    return penalty.sum() / (total * rows[0].numel())


def weighted_loss(
    pred: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    energy_weight: float,
    forces_weight: float,
    stress_weight: float,
    huber_delta: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w_E <(dE/N)^2> + w_F <|dF|^2>/3 + w_S <|dS|^2>/9, over labelled structures only.

    Each mean is weighted by the structure's ``keys.WEIGHT`` (``data.weight_key``; an atom
    carries its structure's weight); a batch without weights weighs every structure 1. With
    ``huber_delta`` (eV/atom, eV/Å, eV/Å³) each square is :func:`huber` instead.
    Returns the total and its parts (for logging).
    """
    num_atoms = batch[keys.NUM_ATOMS].to(pred[keys.ENERGY].dtype)
    weight = batch.get(keys.WEIGHT, torch.ones_like(num_atoms))
    atoms = batch[keys.BATCH]
    parts = {
        "energy": _weighted_mean(
            (pred[keys.ENERGY] - batch[keys.ENERGY]) / num_atoms,
            batch[keys.HAS_ENERGY].bool(),
            weight,
            huber_delta,
        ),
        "forces": _weighted_mean(
            pred[keys.FORCES] - batch[keys.FORCES],
            batch[keys.HAS_FORCES].bool()[atoms],
            weight[atoms],
            huber_delta,
        ),
    }
    total = energy_weight * parts["energy"] + forces_weight * parts["forces"]
    if stress_weight > 0 and keys.STRESS in pred:
        parts["stress"] = _weighted_mean(
            pred[keys.STRESS] - batch[keys.STRESS],
            batch[keys.HAS_STRESS].bool(),
            weight,
            huber_delta,
        )
        total = total + stress_weight * parts["stress"]
    return total, parts
