"""Weighted energy-per-atom / forces / stress loss."""

import torch

from eqna.data import keys


def _masked_mse(residual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean square of the rows of ``residual`` where ``mask``; zero when nothing is labelled."""
    if not bool(mask.any()):
        return residual.new_zeros(())
    return residual[mask].pow(2).mean()


def weighted_loss(
    pred: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    energy_weight: float,
    forces_weight: float,
    stress_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w_E <(dE/N)^2> + w_F <|dF|^2>/3 + w_S <|dS|^2>/9, over labelled structures only.

    Returns the total and its parts (for logging).
    """
    num_atoms = batch[keys.NUM_ATOMS].to(pred[keys.ENERGY].dtype)
    parts = {
        "energy": _masked_mse(
            (pred[keys.ENERGY] - batch[keys.ENERGY]) / num_atoms, batch[keys.HAS_ENERGY].bool()
        ),
        "forces": _masked_mse(
            pred[keys.FORCES] - batch[keys.FORCES], batch[keys.HAS_FORCES].bool()[batch[keys.BATCH]]
        ),
    }
    total = energy_weight * parts["energy"] + forces_weight * parts["forces"]
    if stress_weight > 0 and keys.STRESS in pred:
        parts["stress"] = _masked_mse(
            pred[keys.STRESS] - batch[keys.STRESS], batch[keys.HAS_STRESS].bool()
        )
        total = total + stress_weight * parts["stress"]
    return total, parts
