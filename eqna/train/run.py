"""One training run: data -> model -> Lightning fit -> test metrics -> deployable model.pt.

The run's folder, lock and resume checks are :mod:`eqna.train.run_folder`; checkpoints,
signals and continued metrics :mod:`eqna.train.lifecycle`; the export :mod:`eqna.train.export`.
"""

import logging
import signal
from contextlib import nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from eqna.data.class_labels import OUTPUTS as CLASSIFIER_OUTPUTS
from eqna.data.launch import launch_rank
from eqna.data.prepare import PreparedData, make_loader, prepare_data, shuffle_generator
from eqna.evaluate.plotting import learning_curves
from eqna.models.io import build_model, builder_hparams, save_model
from eqna.nn.atom_features import atom_feature_table
from eqna.nn.neural_atoms import k_eff_summary
from eqna.train.config import NOT_BUILDER_KEYS, Config
from eqna.train.distributed import shard
from eqna.train.epoch_log import EpochLine, use_progress_bar
from eqna.train.export import check_finite, report_test
from eqna.train.finetune import KEPT, check_same_architecture, freeze, load_pretrained, start_from
from eqna.train.lifecycle import (
    AtomicCheckpointIO,
    ContinueMetrics,
    Interrupted,
    ResumePoint,
    StopRequest,
)
from eqna.train.module import TrainingModule
from eqna.train.recipe import Recipe
from eqna.train.run_folder import (
    RunLock,
    check_fresh,
    check_resumable,
    check_writable,
    last_checkpoint,
)

LOG = logging.getLogger("eqna")


class ModelBuildError(ValueError):
    """The model section names a network that cannot be built (one line, naming the key)."""


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


def build_from_config(config: Config, data: PreparedData, pretrained=None):
    """The model and the full hyperparameters (config + data-derived) it was built from.

    A SkipAtom table is read from ``model.atom_features_file`` here and stored in the
    hyperparameters, so the saved model does not need the file. ``pretrained`` (model,
    payload) of ``model.init_from``: same architecture checked, its weights copied in.
    """
    family = config.model["family"]
    hparams = {k: v for k, v in config.model.items() if k not in NOT_BUILDER_KEYS}
    hparams.update(builder_hparams(family, data.derived))
    if pretrained is not None:
        _, payload = pretrained
        hparams.update({k: payload["hparams"][k] for k in KEPT if k in payload["hparams"]})
        check_same_architecture(config.model["init_from"], payload, family, hparams)
    try:
        if hparams.get("atom_features") == "skipatom":
            files = hparams["elements"], hparams["atom_features_file"]
            hparams["atom_feature_table"] = atom_feature_table("skipatom", *files).tolist()
        model = build_model(family, hparams)
    except ValueError as err:  # a combination of model keys the network refuses
        raise ModelBuildError(f"{config.source}: {err}") from err
    dtype = getattr(torch, config.training.dtype)
    if pretrained is not None:
        start_from(model, pretrained[0], hparams.get("atomic_energies"))
    frozen = freeze(model, config.training.freeze)
    if frozen:
        LOG.info("frozen: %d parameter tensors (%s)", len(frozen), ", ".join(frozen[:4]))
    return model.to(dtype), family, hparams


def _prepare(config: Config, pretrained=None) -> PreparedData:
    model = config.model
    extensive = model.get("output") == "property" and model.get("pooling") == "sum"
    known = {}
    if pretrained is not None:  # the pretrained element order, and its E0s as the default
        hp = pretrained[1]["hparams"]
        known = {"elements": list(hp["elements"]), "known_e0s": hp.get("atomic_energies"),
                 "known_classes": hp.get("classes")}  # fmt: skip
    output = model.get("output")
    return prepare_data(
        config.data,
        float(model.get("r_max", 5.0)),
        max_num_neighbors=model.get("max_num_neighbors"),
        extensive=extensive,
        training=config.training,  # its loss weights: the labels the data must hold
        classifier=output if output in CLASSIFIER_OUTPUTS else None,
        **known,
    )


def _callbacks(config: Config, out: Path, stop: StopRequest, resuming: bool) -> list:
    callbacks = [
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="best",
            monitor="val_loss",
            mode="min",
            save_last=True,
            enable_version_counter=False,  # never a best-v1.ckpt beside best.ckpt
        ),
        ResumePoint(last_checkpoint(out), config.training.checkpoint_every_minutes, stop),
        ContinueMetrics(out / "logs" / "metrics.csv", resuming),
        LearningRateMonitor(logging_interval="epoch"),
        EpochLine(),
    ]
    if config.training.scheduler == "cosine_time" or config.training.stage_two_fraction:
        callbacks.append(Recipe(config.training))
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


def _trainer(config: Config, out: Path, stop: StopRequest, resuming: bool) -> pl.Trainer:
    cfg = config.training
    if cfg.strategy == "ddp_spawn":  # it pickles the loaders' every tensor: too many for fds
        torch.multiprocessing.set_sharing_strategy("file_system")
    max_time = {"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None
    return pl.Trainer(
        default_root_dir=out,
        max_epochs=cfg.max_epochs,
        max_time=max_time,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        use_distributed_sampler=False,  # eqna's samplers shard (eqna.train.distributed)
        inference_mode=False,
        gradient_clip_val=cfg.gradient_clip,
        logger=_loggers(config, out),
        callbacks=_callbacks(config, out, stop, resuming),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=use_progress_bar(cfg.progress_bar),
        log_every_n_steps=cfg.log_every_n_steps,
        enable_model_summary=False,
        # atom-budget batches: each epoch has its own number of them, read again every epoch
        reload_dataloaders_every_n_epochs=1 if config.data.max_atoms_per_batch else 0,
    )


def train(
    config: Config, out: str | Path, *, resume: bool = False, overwrite: bool = False
) -> dict:
    """Train from a validated config into ``out``; returns the test metrics (meV units).

    ``resume`` continues the run in ``out`` from its last checkpoint (same config, budget
    aside); otherwise ``out`` must be empty, or ``overwrite`` clears the earlier run's files.

    Raises:
        RunFolderError, DataError, SetupError: before anything is written.
        TrainingDiverged: a non-finite loss or gradient (nothing is exported).
        Interrupted: SIGTERM/SIGINT; a resumable checkpoint and an interrupted model.pt exist.
    """
    out = Path(out)
    check_setup(config.training)
    if config.training.num_threads is not None:
        torch.set_num_threads(config.training.num_threads)
    lead = launch_rank() == 0  # other DDP processes neither check, lock nor write the folder
    resume_from = check_resumable(out, config.to_dict()) if resume else None
    if not resume and lead:
        check_fresh(out, overwrite)
    pl.seed_everything(config.training.seed, workers=True, verbose=False)
    init_from = config.model.get("init_from")
    pretrained = load_pretrained(init_from) if init_from else None
    data = _prepare(config, pretrained)
    model, family, hparams = build_from_config(config, data, pretrained)
    with RunLock(out) if lead else nullcontext(), StopRequest() as stop:
        if lead:
            check_writable(out)
        if not resume and lead:
            (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return _fit_and_export(config, out, data, (model, family, hparams), stop, resume_from)


def _fit_and_export(config, out, data, built, stop, resume_from) -> dict:
    model, family, hparams = built
    dtype = getattr(torch, config.training.dtype)
    workers, seed, atoms = (
        config.data.num_workers, config.training.seed, config.data.max_atoms_per_batch
    )  # fmt: skip
    train_loader = make_loader(
        data.train, config.data.batch_size, dtype, True, seed, workers, shard, atoms
    )
    meta = {"family": family, "hparams": hparams, "config": config.to_dict()}
    module = TrainingModule(
        model,
        config.training,
        meta,
        shuffle_generator(train_loader),
        class_counts=data.derived.get("class_counts"),
    )
    trainer = _trainer(config, out, stop, resume_from is not None)
    valid_batch = config.data.valid_batch_size
    valid_loader = make_loader(data.valid, valid_batch, dtype, False, 0, workers, shard, atoms)
    interrupted = None
    try:
        trainer.fit(module, train_loader, valid_loader, ckpt_path=resume_from)
    except (Interrupted, SIGTERMException) as err:
        if isinstance(err, SIGTERMException):  # Lightning's own, raised inside validation
            trainer.save_checkpoint(last_checkpoint(out))
            err = Interrupted(signal.SIGTERM, trainer.current_epoch)
        interrupted = err
    if not trainer.is_global_zero:  # rank 0 exports and tests; the others are done
        if interrupted is not None:
            raise interrupted
        return {}
    log_dir = Path(trainer.logger.log_dir)
    if (log_dir / "metrics.csv").is_file():  # absent only when fit logged nothing
        learning_curves(log_dir / "metrics.csv", log_dir / "learning_curves.png", str(out))
    best = trainer.checkpoint_callback.best_model_path
    if best and Path(best).is_file():  # export the best validation epoch, not the last
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    epochs = trainer.current_epoch
    if config.training.strategy == "ddp_spawn":  # fit ran in processes that are gone now
        last = torch.load(last_checkpoint(out), map_location="cpu", weights_only=True)
        epochs = module.adopt_spawned_end(last)
    final = module.eval_model.cpu()
    check_finite(final, f"{out}: trained model")
    extra = {"train_seconds": module.train_seconds, "epochs": epochs}
    if config.training.stage_two_fraction is not None:
        extra["stage"] = module.stage  # 2: the best (EMA) weights of stage two
    extra.update(k_eff_summary(final))
    if interrupted is not None:
        extra["interrupted"] = str(interrupted)
    save_model(out / "model.pt", final, family, hparams, config.to_dict(), extra)
    metrics = report_test(final, data, config, out, extra, dtype)
    if interrupted is not None:
        raise interrupted
    return metrics
