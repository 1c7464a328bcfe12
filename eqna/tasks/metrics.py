"""Error metrics per quantity: energy per atom, forces, stress (MAE and RMSE)."""

import torch

from eqna.data import keys

QUANTITIES = ("energy_per_atom", "forces", "stress", "property")
UNITS = {
    "energy_per_atom": "meV/atom",
    "forces": "meV/Å",
    "stress": "meV/Å³",
    "property": "target units",
}
FACTORS = {"energy_per_atom": 1000.0, "forces": 1000.0, "stress": 1000.0, "property": 1.0}
"""Residuals are in eV-based units; reported metrics are these multiples (meV; properties as
labelled in the data)."""


def wants_stress(batch: dict[str, torch.Tensor]) -> bool:
    """Stress costs an extra strain derivative: only for batches that have stress labels."""
    return bool(batch[keys.HAS_STRESS].any())


def errors(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict:
    """Residuals of each labelled quantity, flattened: {quantity: [m] tensor} (eV-based)."""
    num_atoms = batch[keys.NUM_ATOMS].to(pred[keys.ENERGY].dtype)
    out = {}
    has_e = batch[keys.HAS_ENERGY].bool()
    out["energy_per_atom"] = ((pred[keys.ENERGY] - batch[keys.ENERGY]) / num_atoms)[has_e]
    has_f = batch[keys.HAS_FORCES].bool()[batch[keys.BATCH]]
    out["forces"] = (pred[keys.FORCES] - batch[keys.FORCES])[has_f].reshape(-1)
    if keys.STRESS in pred:
        has_s = batch[keys.HAS_STRESS].bool()
        out["stress"] = (pred[keys.STRESS] - batch[keys.STRESS])[has_s].reshape(-1)
    return out


class ErrorAccumulator:
    """Sums |r| and r^2 over batches so MAE and RMSE are exact over a whole data set."""

    def __init__(self):
        self.abs_sum = dict.fromkeys(QUANTITIES, 0.0)
        self.sq_sum = dict.fromkeys(QUANTITIES, 0.0)
        self.count = dict.fromkeys(QUANTITIES, 0)

    def update(self, residuals: dict[str, torch.Tensor]) -> None:
        for name, r in residuals.items():
            r = r.detach().double()
            self.abs_sum[name] += float(r.abs().sum())
            self.sq_sum[name] += float(r.pow(2).sum())
            self.count[name] += r.numel()

    def sums(self) -> list[float]:
        """Every running sum, flat (for an all-reduce across processes)."""
        names = QUANTITIES
        return (
            [self.abs_sum[k] for k in names]
            + [self.sq_sum[k] for k in names]
            + [self.count[k] for k in names]
        )

    def load_sums(self, values: list[float]) -> None:
        """The sums of :meth:`sums`, e.g. added over processes."""
        k = len(QUANTITIES)
        self.abs_sum = dict(zip(QUANTITIES, values[:k]))
        self.sq_sum = dict(zip(QUANTITIES, values[k : 2 * k]))
        self.count = dict(zip(QUANTITIES, (round(c) for c in values[2 * k :])))

    def compute(self) -> dict[str, float]:
        """{"forces_mae": ..., "forces_rmse": ...} in the units of :data:`UNITS`."""
        result = {}
        for name in QUANTITIES:
            if self.count[name]:
                factor = FACTORS[name]
                result[f"{name}_mae"] = factor * self.abs_sum[name] / self.count[name]
                result[f"{name}_rmse"] = factor * (self.sq_sum[name] / self.count[name]) ** 0.5
        return result


def format_table(metrics: dict[str, float], title: str = "") -> str:
    """A small markdown table: quantity | MAE | RMSE | unit (a classifier's metrics:
    :func:`eqna.tasks.classification_metrics.format_classification`)."""
    if "accuracy" in metrics and "roc_auc" in metrics:
        from eqna.tasks.classification_metrics import format_classification

        text = format_classification(metrics, list(metrics["roc_auc"]), title)
        return text + _k_eff_line(metrics)
    lines = ([f"{title}"] if title else []) + [
        "| quantity | MAE | RMSE | unit |",
        "|---|---|---|---|",
    ]
    for name in QUANTITIES:
        if f"{name}_mae" in metrics:
            fmt = ".4g" if name == "property" else ".3f"
            lines.append(
                f"| {name} | {metrics[f'{name}_mae']:{fmt}} | "
                f"{metrics[f'{name}_rmse']:{fmt}} | {UNITS[name]} |"
            )
    return "\n".join(lines) + _k_eff_line(metrics)


def _k_eff_line(metrics: dict) -> str:
    lines = []
    if "k_eff" in metrics:
        lines.append(f"neural atoms computed with (K_eff, all layers): {metrics['k_eff']:.0f}")
    if "clusters_mean" in metrics:
        lines.append(
            f"Fourier neural atoms per structure (K, all layers): {metrics['clusters_mean']:.2f}"
            f" ± {metrics['clusters_std']:.2f}, {metrics['clusters_min']:.2f} to "
            f"{metrics['clusters_max']:.2f}"
        )
    return "".join(f"\n\n{line}" for line in lines)
