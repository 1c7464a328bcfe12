"""PNG figures: parity plots, error histograms and learning curves.

Figures are drawn on matplotlib's Agg canvas without pyplot, so plotting never switches the
backend of an interactive session and leaves no figure open behind it. matplotlib is imported
inside the functions: importing this module is free.
"""

import csv
import logging
import math
from pathlib import Path

import numpy as np

from eqna.tasks.metrics import FACTORS, QUANTITIES, UNITS

__all__ = [
    "error_histograms",
    "learning_curves",
    "parity_plot",
    "read_metrics_csv",
    "residuals",
    "roc_curves",
]

PANEL_SIZE = (4.2, 4.0)  # inches per panel


def figure_row(num_panels: int):
    """A figure on the Agg canvas with one row of ``num_panels`` axes; returns (fig, axes)."""
    fig, axes = figure_grid(1, num_panels)
    return fig, axes[0]


def figure_grid(num_rows: int, num_cols: int):
    """A figure on the Agg canvas with a grid of axes; returns (fig, axes[row, col])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PANEL_SIZE[0] * num_cols, PANEL_SIZE[1] * num_rows))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(num_rows, num_cols, squeeze=False)


def save_figure(fig, path: str | Path, title: str) -> Path:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clear()  # Figure objects are not tracked by pyplot: clearing releases the artists
    return Path(path)


def residuals(parity: dict) -> dict[str, np.ndarray]:
    """Prediction minus reference per quantity, in eV units, from ``evaluate_dataset`` arrays.

    Args:
        parity: ``{quantity: (reference [m], predicted [m])}``.
    """
    return {name: np.asarray(pred) - np.asarray(ref) for name, (ref, pred) in parity.items()}


def _mae_rmse(residual_ev: np.ndarray, name: str) -> tuple[float, float]:
    """MAE and RMSE in the reported units (meV, see ``FACTORS``) of residuals in eV units."""
    factor = FACTORS[name]
    mae, rmse = np.abs(residual_ev).mean(), np.sqrt((residual_ev**2).mean())
    return factor * float(mae), factor * float(rmse)


def parity_plot(parity: dict, path: str | Path, title: str = "") -> Path:
    """One panel per labelled quantity: predicted vs reference, with the diagonal.

    Args:
        parity: ``{quantity: (reference [m], predicted [m])}`` in eV units, as returned by
            ``eqna.evaluate.evaluation.evaluate_dataset``; energies per atom relative to E0.
        path: PNG file to write.
        title: figure title.

    Returns:
        ``path``.
    """
    _require_data(parity)
    fig, axes = figure_row(len(parity))
    for ax, (name, (ref, pred)) in zip(axes, parity.items()):
        ax.scatter(ref, pred, s=3, alpha=0.4)
        lo, hi = min(ref.min(), pred.min()), max(ref.max(), pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae, rmse = _mae_rmse(np.asarray(pred) - np.asarray(ref), name)
        unit = UNITS[name].replace("meV", "eV")
        label = f"{name} - E0" if name == "energy_per_atom" else name
        ax.set(
            xlabel=f"reference {label} ({unit})",
            ylabel=f"predicted {label} ({unit})",
            title=f"{name}\nMAE {mae:.2f}, RMSE {rmse:.2f} {UNITS[name]}",
        )
    return save_figure(fig, path, title)


def error_histograms(parity: dict, path: str | Path, title: str = "") -> Path:
    """One panel per labelled quantity: distribution of prediction - reference, in meV units.

    Args:
        parity: as for :func:`parity_plot`.
        path: PNG file to write.
        title: figure title.

    Returns:
        ``path``.
    """
    _require_data(parity)
    fig, axes = figure_row(len(parity))
    for ax, (name, residual) in zip(axes, residuals(parity).items()):
        mae, rmse = _mae_rmse(residual, name)
        residual_mev = FACTORS[name] * residual
        edges = np.histogram_bin_edges(residual_mev, bins="auto")
        ax.hist(residual_mev, bins=edges if len(edges) <= 101 else 100)
        ax.axvline(0.0, color="k", ls="--", lw=0.8)
        ax.set(
            xlabel=f"{name} error, predicted - reference ({UNITS[name]})",
            ylabel="count",
            title=f"{name}\nMAE {mae:.2f}, RMSE {rmse:.2f} {UNITS[name]}",
        )
    return save_figure(fig, path, title)


def _require_data(parity: dict) -> None:
    if not parity:
        raise ValueError(
            "nothing to plot: the data set has no energy, force, stress or property labels"
        )


def read_metrics_csv(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The columns of Lightning's CSVLogger file as ``{column: (epochs [k], values [k])}``.

    Rows are sparse (each row holds the metrics logged at one step); empty cells are dropped.
    Rows without an epoch (the learning rate, logged per step) take the epoch that step falls
    in, from the steps of the rows that have one. Columns with no value are left out.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps, epochs = [], []
    for row in rows:
        if row.get("epoch") and row.get("step"):
            steps.append(float(row["step"]))
            epochs.append(float(row["epoch"]))
    order = np.argsort(steps, kind="stable")
    steps, epochs = np.asarray(steps)[order], np.asarray(epochs)[order]
    series: dict[str, tuple[list, list]] = {}
    for row in rows:
        epoch = _epoch_of(row, steps, epochs)
        if epoch is None:
            continue
        for column, cell in row.items():
            if column in ("epoch", "step") or not cell:
                continue
            series.setdefault(column, ([], []))
            series[column][0].append(epoch)
            series[column][1].append(float(cell))
    return {name: (np.asarray(x), np.asarray(y)) for name, (x, y) in series.items()}


def _epoch_of(row: dict, steps: np.ndarray, epochs: np.ndarray) -> float | None:
    """The row's epoch; for rows without one, the first epoch whose last step is >= its step."""
    if row.get("epoch"):
        return float(row["epoch"])
    if not row.get("step") or not len(steps):
        return None
    index = int(np.searchsorted(steps, float(row["step"]), side="left"))
    return float(epochs[index]) if index < len(epochs) else float(epochs[-1] + 1)


def _curve_panels(columns: list[str]) -> list[tuple[str, str, list[str], bool]]:
    """(title, y label, columns, log scale) of each learning-curve panel that has data."""
    maes = [f"val_{q}_mae" for q in QUANTITIES if f"val_{q}_mae" in columns]
    k_eff = sorted(
        (c for c in columns if c == "k_eff" or c.startswith("k_eff_")),
        key=lambda c: (c != "k_eff", int(c[6:]) if c[6:].isdigit() else math.inf, c),
    )
    panels = [
        ("loss", "loss", [c for c in ("train_loss", "val_loss") if c in columns], True),
        ("validation MAE", "MAE (meV units)", maes, True),
        (
            "validation accuracy",
            "accuracy",
            [c for c in ("val_accuracy", "val_exact_match") if c in columns],
            False,
        ),
        ("learning rate", "learning rate", sorted(c for c in columns if c.startswith("lr-")), True),
        ("neural atoms K_eff", "K_eff", k_eff, False),
    ]
    return [panel for panel in panels if panel[2]]


def _label(column: str) -> str:
    for name in QUANTITIES:
        if column == f"val_{name}_mae":
            return f"{name} ({UNITS[name]})"
    return column


def learning_curves(metrics_csv: str | Path, out_png: str | Path, title: str = "") -> Path | None:
    """Learning curves against epoch from the ``metrics.csv`` of Lightning's CSVLogger.

    Panels, each drawn only when its columns are present: train and validation loss (log
    scale), validation MAE per quantity (``val_<quantity>_mae``, log scale), learning rate
    (``lr-*``, log scale) and the neural atoms in use (``k_eff`` and per layer ``k_eff_<i>``).

    Args:
        metrics_csv: the CSV file, e.g. ``<run>/logs/metrics.csv``.
        out_png: PNG file to write.
        title: figure title.

    Returns:
        ``out_png``, or None (nothing written) when the CSV holds none of those columns.
    """
    series = read_metrics_csv(metrics_csv)
    panels = _curve_panels(list(series))
    if not panels:
        logging.getLogger("eqna").warning("%s: no learning curves to plot", metrics_csv)
        return None
    from matplotlib.ticker import MaxNLocator

    fig, axes = figure_row(len(panels))
    for ax, (panel_title, ylabel, columns, log) in zip(axes, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for column in columns:
            epochs, values = series[column]
            ax.plot(epochs, values, marker="." if len(values) < 30 else None, label=_label(column))
        if log and all((series[c][1] > 0).all() for c in columns):
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=ylabel, title=panel_title)
        ax.legend(fontsize="small")
    return save_figure(fig, out_png, title)


def roc_curves(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    multilabel: bool,
    path: str | Path,
    title: str = "",
) -> Path:
    """ROC curves of a classifier, one per class (one-vs-rest) or label, with their areas;
    classes with only one kind of example in the data are left out of the plot.

    Args:
        labels: [m] class indices (multi-class) or [m, L] 0/1 (multilabel).
        probabilities: [m, C] the model's probabilities.
    """
    from eqna.tasks.classification_metrics import roc_auc, roc_curve

    probabilities = np.asarray(probabilities)
    truth = (
        np.asarray(labels).astype(bool) if multilabel else np.eye(len(classes), dtype=bool)[labels]
    )
    fig, axes = figure_row(1)
    ax = axes[0]
    for c, name in enumerate(classes):
        area = roc_auc(truth[:, c], probabilities[:, c])
        if np.isfinite(area):
            fpr, tpr = roc_curve(truth[:, c], probabilities[:, c])
            ax.plot(fpr, tpr, label=f"{name} ({area:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize="x-small", title="class (ROC-AUC)", title_fontsize="x-small")
    return save_figure(fig, path, title)
