"""Predictions of a model over a data set, with error metrics and the arrays for parity plots."""

import numpy as np
import torch

from eqna.data import keys
from eqna.data.prepare import make_loader
from eqna.tasks.metrics import ErrorAccumulator
from eqna.tasks.tasks import PotentialTask, PropertyTask


def _reference_energy(model, batch) -> torch.Tensor:
    """[g] sum of the model's isolated-atom energies E0 per structure (zeros if it has none).

    Parity plots show E - sum E0: total energies of different molecules differ by hundreds of
    eV and would hide every error on one diagonal.
    """
    num_graphs = batch[keys.NUM_ATOMS].shape[0]
    e0 = model.network.energy_shift.atomic_energies[batch[keys.NODE_TYPES]].to(batch[keys.ENERGY].dtype)
    return batch[keys.ENERGY].new_zeros(num_graphs).index_add_(0, batch[keys.BATCH], e0)


def _masks(model, batch, dtype) -> dict:
    """quantity -> (label mask, key, offset, divisor) of the parity arrays."""
    if keys.HAS_PROPERTY in batch:
        return {"property": (batch[keys.HAS_PROPERTY].bool(), keys.PROPERTY, 0.0, 1.0)}
    n = batch[keys.NUM_ATOMS].to(dtype)
    return {
        "energy_per_atom": (
            batch[keys.HAS_ENERGY].bool(),
            keys.ENERGY,
            _reference_energy(model, batch),
            n,
        ),
        "forces": (batch[keys.HAS_FORCES].bool()[batch[keys.BATCH]], keys.FORCES, 0.0, 1.0),
        "stress": (batch[keys.HAS_STRESS].bool(), keys.STRESS, 0.0, 1.0),
    }


def evaluate_dataset(
    model,
    dataset,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
):
    """Run ``model`` over ``dataset``; returns (metrics in meV units, parity arrays in eV units).

    Parity arrays: ``{quantity: (reference [m], predicted [m])}`` for labelled quantities, with
    energy per atom relative to the model's E0s, force components and stress components, or
    the property values of a property model.
    """
    dtype = dtype or next(model.parameters()).dtype
    model = model.to(device).eval()
    task = PotentialTask() if model.is_potential else PropertyTask()
    accumulator = ErrorAccumulator()
    pairs = {name: ([], []) for name in ("energy_per_atom", "forces", "stress", "property")}
    for batch in make_loader(dataset, batch_size, dtype, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad() if isinstance(task, PropertyTask) else torch.enable_grad():
            pred = task.predict(model, batch)
        accumulator.update(task.residuals(pred, batch))
        masks = _masks(model, batch, dtype)
        for name, (mask, key, offset, divisor) in masks.items():
            if key not in pred:
                continue
            ref = (batch[key].detach() - offset) / divisor
            prd = (pred[key].detach() - offset) / divisor
            pairs[name][0].append(ref[mask].reshape(-1).cpu().double().numpy())
            pairs[name][1].append(prd[mask].reshape(-1).cpu().double().numpy())
    parity = {name: (np.concatenate(r), np.concatenate(p)) for name, (r, p) in pairs.items() if r}
    parity = {name: arrays for name, arrays in parity.items() if arrays[0].size}
    return accumulator.compute(), parity
