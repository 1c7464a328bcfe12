"""One training run: data -> model -> Lightning fit -> test metrics -> deployable model.pt."""

import json
import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from eqna.data.prepare import PreparedData, make_loader, prepare_data
from eqna.evaluate.evaluation import evaluate_dataset
from eqna.evaluate.plotting import learning_curves
from eqna.models.io import build_model, builder_hparams, save_model
from eqna.nn.atom_features import atom_feature_table
from eqna.nn.neural_atoms import k_eff_summary
from eqna.tasks.metrics import format_table
from eqna.train.config import Config
from eqna.train.epoch_log import EpochLine, use_progress_bar
from eqna.train.module import TrainingModule


class SetupError(RuntimeError):
    """The machine lacks what the config asks for (a GPU, an optional package)."""


def check_setup(training) -> None:
    """Refuse, before anything is written, a run this machine cannot do."""
    if "tensorboard" in training.loggers:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise SetupError(
                "training.loggers includes 'tensorboard' but the tensorboard package is not "
                "installed: pip install 'eqna[tensorboard]'"
            )
    if training.accelerator == "gpu" and not torch.cuda.is_available():
        raise SetupError(
            "training.accelerator is 'gpu' but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "use training.accelerator=cpu or auto"
        )


def build_from_config(config: Config, data: PreparedData):
    """The model and the full hyperparameters (config + data-derived) it was built from.

    A SkipAtom table is read from ``model.atom_features_file`` here and stored in the
    hyperparameters, so the saved model does not need the file.
    """
    family = config.model["family"]
    hparams = {k: v for k, v in config.model.items() if k != "family"}
    hparams.update(builder_hparams(family, data.derived))
    if hparams.get("atom_features") == "skipatom":
        table = atom_feature_table("skipatom", hparams["elements"], hparams["atom_features_file"])
        hparams["atom_feature_table"] = table.tolist()
    dtype = getattr(torch, config.training.dtype)
    return build_model(family, hparams).to(dtype), family, hparams


def _prepare(config: Config) -> PreparedData:
    model = config.model
    extensive = model.get("output") == "property" and model.get("pooling") == "sum"
    return prepare_data(
        config.data,
        float(model.get("r_max", 5.0)),
        max_num_neighbors=model.get("max_num_neighbors"),
        extensive=extensive,
        training=config.training,  # its loss weights: the labels the data must hold
    )


def _callbacks(config: Config, out: Path) -> list:
    callbacks = [
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="best",
            monitor="val_loss",
            mode="min",
            save_last=True,
        ),
        LearningRateMonitor(logging_interval="epoch"),
        EpochLine(),
    ]
    if config.training.early_stopping_patience is not None:
        callbacks.append(
            EarlyStopping("val_loss", patience=config.training.early_stopping_patience)
        )
    return callbacks


def _loggers(config: Config, out: Path) -> list:
    """CSV first (the learning curves and tools read logs/metrics.csv), then the others."""
    loggers = [CSVLogger(out, name="logs", version="")]
    if "tensorboard" in config.training.loggers:
        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    return loggers


def _trainer(config: Config, out: Path) -> pl.Trainer:
    cfg = config.training
    max_time = {"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None
    return pl.Trainer(
        default_root_dir=out,
        max_epochs=cfg.max_epochs,
        max_time=max_time,
        accelerator=cfg.accelerator,
        devices=1,
        inference_mode=False,
        gradient_clip_val=cfg.gradient_clip,
        logger=_loggers(config, out),
        callbacks=_callbacks(config, out),
        enable_progress_bar=use_progress_bar(cfg.progress_bar),
        log_every_n_steps=cfg.log_every_n_steps,
        enable_model_summary=False,
    )


def train(config: Config, out: str | Path) -> dict:
    """Train from a validated config into ``out``; returns the test metrics (meV units)."""
    out = Path(out)
    check_setup(config.training)
    pl.seed_everything(config.training.seed, workers=True, verbose=False)
    data = _prepare(config)
    model, family, hparams = build_from_config(config, data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    dtype = getattr(torch, config.training.dtype)
    module = TrainingModule(model, config.training)
    trainer = _trainer(config, out)
    start = time.perf_counter()
    trainer.fit(
        module,
        make_loader(data.train, config.data.batch_size, dtype, True, config.training.seed),
        make_loader(data.valid, config.data.valid_batch_size, dtype, False),
    )
    wall = time.perf_counter() - start
    log_dir = Path(trainer.logger.log_dir)
    if (log_dir / "metrics.csv").is_file():  # absent only when fit logged nothing
        learning_curves(log_dir / "metrics.csv", log_dir / "learning_curves.png", str(out))
    best = trainer.checkpoint_callback.best_model_path
    if best:  # export the best validation epoch, not the last
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    final = module.eval_model.cpu()
    extra = {"train_seconds": wall, "epochs": trainer.current_epoch, **k_eff_summary(final)}
    save_model(out / "model.pt", final, family, hparams, config.to_dict(), extra)
    return _report_test(final, data, config, out, extra, dtype)


def _report_test(model, data, config, out: Path, fit: dict, dtype) -> dict:
    name = "test" if data.test is not None else "validation"
    dataset = data.test if data.test is not None else data.valid
    metrics, _ = evaluate_dataset(model, dataset, config.data.valid_batch_size, dtype)
    metrics.update(k_eff_summary(model))  # the neural atoms the exported model computes with
    table = format_table(
        metrics,
        f"{name} set ({len(dataset)} structures), model {out}/model.pt,"
        f" trained {fit['train_seconds'] / 60:.1f} min",
    )
    (out / "test_metrics.md").write_text(table + "\n")
    (out / "test_metrics.json").write_text(
        json.dumps(
            {
                "split": name,
                **metrics,
                "train_seconds": fit["train_seconds"],
                "epochs": fit["epochs"],
            },
            indent=2,
        )
    )
    logging.getLogger("eqna").info("wrote %s", out / "model.pt")
    print(table)
    return metrics
