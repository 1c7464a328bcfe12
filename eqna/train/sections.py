"""The ``data`` and ``training`` config sections: each key's type, default, range and meaning."""

from __future__ import annotations

from typing import Annotated, Literal

from ase.data import chemical_symbols
from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from eqna.train.schema import Section

__all__ = ["DataConfig", "TrainingConfig"]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError(f"must not be empty, got {text!r}")
    return text


Text = Annotated[str, AfterValidator(_not_blank)]


class DataConfig(Section):
    """The ``data`` section."""

    train: Text = Field(
        description="training frames: any ASE-readable file (extxyz, ...), an ASE database "
        "(.db), a store written by eqna-pack (read lazily), a CGCNN folder or embedded:NAME"
    )
    valid: Text | None = Field(None, description="validation frames; null: split off train")
    test: Text | None = Field(None, description="test frames; null: split off train")
    select: Text | None = Field(
        None,
        description="ASE db selection (e.g. 'config_type=bulk,natoms<64') applied to each of "
        "train/valid/test that is an ASE database; null: all rows",
    )
    valid_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of train to validate")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of train to test")
    split_seed: int = Field(0, ge=0, description="seed of the random train/valid/test split")
    bootstrap_seed: int | None = Field(
        None,
        ge=0,
        description="resample the training split with replacement, same size, with this seed "
        "(a bootstrap member of a committee: eqna-train --committee N --bootstrap); "
        "validation and test are untouched; null: no resampling",
    )
    energy_key: Text = Field("energy", description="atoms.info key of the energy (eV)")
    forces_key: Text = Field("forces", description="atoms.arrays key of the forces (eV/Å)")
    stress_key: Text = Field("stress", description="atoms.info key of the stress (eV/Å³)")
    virial_key: Text | None = Field(
        None,
        description="atoms.info key of a virial (eV; 3x3 or Voigt 6), trained as the stress "
        "-virial / V (ASE sign: virial = -dE/d(strain), stress positive = tensile); needs a "
        "cell periodic in 3D; a frame with a stress label uses the stress; null: none",
    )
    weight_key: Text | None = Field(
        None,
        description="atoms.info key of a per-structure loss weight (finite, >= 0; e.g. "
        "config_weight); frames without it weigh 1; metrics stay unweighted; null: all 1",
    )
    e0s: str | dict[str, float] = Field(
        "auto",
        description="isolated-atom energies: auto (isolated atoms in the data, else least "
        "squares), isolated, least_squares, average (mean energy per atom for every element), "
        "an extxyz file, or a mapping element -> eV",
    )
    min_distance: float = Field(
        0.1, ge=0, description="Å: a frame with two atoms closer is an error; 0: no check"
    )
    max_neighbors_per_atom: float = Field(
        500.0,
        gt=0,
        description="a frame whose number density implies more neighbours per atom within "
        "r_max is an error (a wrong or compressed cell), checked before the neighbour search",
    )
    batch_size: int = Field(8, ge=1, description="training batch size in frames")
    valid_batch_size: int = Field(32, ge=1, description="validation/test batch size in frames")
    max_atoms_per_batch: int | None = Field(
        None,
        ge=1,
        description="also close a batch before it holds more atoms (bounded memory per step "
        "for mixed sizes; per process under DDP); null: batch_size structures only",
    )
    num_workers: int = Field(
        0,
        ge=0,
        description="DataLoader worker processes that build and batch graphs (persistent); 0: "
        "in the training process. Pays for stores (graphs built on access), not for files",
    )
    max_train_frames: int | None = Field(None, ge=1, description="first frames of train kept")
    statistics_frames: int | None = Field(
        None,
        ge=1,
        description="E0s (least squares), shift, scale and neighbour count from this many "
        "training structures drawn with split_seed (large stores); null: all",
    )
    target_key: str | list[str] | None = Field(
        None,
        description="atoms.info key(s) of a per-structure target (model.output: property), "
        "or the one key of a class label (classification: an integer or a class name; "
        "multilabel: a list of 0/1)",
    )
    classes: int | list[str | int] | None = Field(
        None,
        description="classifiers: the class names in output order (multilabel: the label "
        "names), or a count C for the integers 0..C-1; a label outside them is an error; "
        "null: every label value in the training frames, sorted",
    )

    @field_validator("classes")
    @classmethod
    def _two_classes(cls, classes):
        if classes is None:
            return classes
        count = classes if isinstance(classes, int) else len(classes)
        if count < 1 or (not isinstance(classes, int) and len(set(map(str, classes))) != count):
            raise ValueError(f"must name distinct classes (or be a count >= 1), got {classes!r}")
        return classes

    @field_validator("test_fraction")
    @classmethod
    def _fractions_leave_training_data(cls, test: float, info: ValidationInfo) -> float:
        valid = info.data.get("valid_fraction")
        if valid is not None and valid + test >= 1:
            raise ValueError(
                f"data.valid_fraction + data.test_fraction must be < 1, got {valid} + {test}"
            )
        return test

    @field_validator("stress_key")
    @classmethod
    def _stress_is_no_virial(cls, key: str) -> str:
        if "virial" in key.lower():  # eV, not eV/Å³, and the opposite sign: silently wrong
            raise ValueError(
                f"{key!r} names a virial, not a stress: give it as data.virial_key={key} "
                "(converted to the stress -virial / V)"
            )
        return key

    @field_validator("e0s")
    @classmethod
    def _e0s_form(cls, e0s: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(e0s, str) and not e0s.strip():
            raise ValueError("must be auto, isolated, least_squares, a file path or a mapping")
        symbols = e0s if isinstance(e0s, dict) else ()
        bad = [s for s in symbols if s not in chemical_symbols[1:]]
        if bad:
            raise ValueError("; ".join(f"{s!r} is not an element symbol" for s in bad))
        return e0s


class TrainingConfig(Section):
    """The ``training`` section."""

    seed: int = Field(0, ge=0, description="global random seed")
    dtype: Literal["float32", "float64"] = Field("float32", description="floating point precision")
    max_epochs: int = Field(100, ge=1, description="maximum number of epochs")
    max_time_minutes: float | None = Field(None, gt=0, description="wall-clock limit; null: none")
    optimizer: Literal["adamw", "adam_amsgrad"] = Field("adamw", description="optimiser")
    lr: float = Field(5e-3, gt=0, description="initial learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay of the optimiser")
    scheduler: Literal["plateau", "cosine", "cosine_time", "none"] = Field(
        "plateau",
        description="plateau: reduce lr on validation-loss plateau; cosine: anneal to min_lr "
        "over max_epochs, per epoch; cosine_time: per step, linear warm-up from min_lr over "
        "warmup_fraction of the budget, then cosine to min_lr at its end (to stage_two_lr at "
        "the switch when stage two is on); the budget is max_time_minutes of training wall "
        "time (resumed sessions included) or max_epochs, whichever runs out first; none",
    )
    scheduler_patience: int = Field(10, ge=0, description="plateau patience in epochs")
    scheduler_factor: float = Field(0.5, gt=0, lt=1, description="plateau lr factor")
    min_lr: float = Field(1e-6, ge=0, description="learning rate floor of the schedulers")
    warmup_fraction: float = Field(
        0.02, ge=0, lt=1, description="cosine_time: linear warm-up over this fraction of the budget"
    )
    ema_decay: float | None = Field(0.99, gt=0, lt=1, description="weight EMA; null: none")
    energy_weight: float = Field(1.0, ge=0, description="loss weight of energies (per atom)")
    forces_weight: float = Field(10.0, ge=0, description="loss weight of forces")
    stress_weight: float = Field(0.0, ge=0, description="loss weight of stresses")
    loss: Literal["mse", "huber"] = Field(
        "mse",
        description="potentials: squared error, or Huber (squared below loss_huber_delta, "
        "linear above: robust to outliers) on energy per atom, force and stress components",
    )
    loss_huber_delta: float = Field(
        0.01,
        gt=0,
        description="loss=huber: the transition, in eV/atom, eV/Å and eV/Å³ (MACE's 0.01)",
    )
    stage_two_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="second stage (MACE's SWA stage) over the last fraction of the budget: "
        "stage_two_* loss weights, constant lr stage_two_lr, EMA restarted from the current "
        "weights, early stopping and best checkpoint restarted; the model exported is stage "
        "two's best (an early stop in stage one ends the run without it); null: one stage",
    )
    stage_two_energy_weight: float | None = Field(
        None, ge=0, description="stage two's energy_weight; null: unchanged"
    )
    stage_two_forces_weight: float | None = Field(
        None, ge=0, description="stage two's forces_weight; null: unchanged"
    )
    stage_two_stress_weight: float | None = Field(
        None, ge=0, description="stage two's stress_weight; null: unchanged"
    )
    stage_two_lr: float = Field(
        1e-3,
        gt=0,
        validate_default=True,
        description="stage two's constant learning rate (at most lr; the schedulers pause)",
    )
    gate_penalty: float = Field(
        1e-3, ge=0, description="lambda of the L1 penalty lambda * sum_k g_k on neural-atom gates"
    )
    property_loss: Literal["mae", "mse", "huber"] = Field(
        "mae", description="property models: loss on residuals in units of the target std"
    )
    huber_delta: float = Field(
        0.1, gt=0, description="property_loss=huber: the transition, in target stds"
    )
    class_weights: list[float] | Literal["balanced"] | None = Field(
        None,
        description="classifiers: loss weight per class (multi-class cross-entropy) or the "
        "weight of the positives per label (multilabel BCE), in class order; balanced: "
        "inverse class frequency of the training split (multilabel: negatives/positives); "
        "null: all 1",
    )
    early_stopping_patience: int | None = Field(
        30, ge=1, description="epochs without improvement before stopping; null: never stop"
    )
    gradient_clip: float | None = Field(10.0, gt=0, description="gradient norm clip; null: none")
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = Field(
        "auto", description="Lightning accelerator; cuda is read as gpu"
    )
    devices: int | Literal["auto"] = Field(
        1,
        description="processes (GPUs, or CPU processes) per node; >1 trains data-parallel "
        "(DDP); data.batch_size is per process",
    )
    num_nodes: int = Field(1, ge=1, description="machines of a multi-node (DDP) run")
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true"] = Field(
        "auto",
        description="Lightning strategy: auto (DDP when devices or num_nodes > 1), ddp "
        "(torchrun, SLURM or Lightning's own launcher), ddp_spawn; CPU uses gloo, GPU NCCL",
    )
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads (torch.set_num_threads); null: torch's default"
    )
    progress_bar: bool = Field(True, description="show the Lightning progress bar")
    log_every_n_steps: int = Field(10, ge=1, description="logging interval in steps")
    freeze: list[str] = Field(
        [],
        description="glob patterns of parameter names kept fixed (fine-tuning), e.g. "
        "'embedding.*' or 'blocks.0.*'; names as in the network's state_dict",
    )
    checkpoint_every_minutes: float = Field(
        5.0,
        gt=0,
        description="write checkpoints/last.ckpt at least this often (minutes), "
        "also inside long epochs, so a killed run loses at most this much or one epoch",
    )
    loggers: list[Literal["csv", "tensorboard"]] = Field(
        ["csv"], description="Lightning loggers a run writes (tensorboard needs its package)"
    )

    @field_validator("class_weights")
    @classmethod
    def _positive_weights(cls, weights):
        if isinstance(weights, list) and (not weights or min(weights) < 0 or max(weights) <= 0):
            raise ValueError(f"must be >= 0 with one > 0, got {weights}")
        return weights

    @field_validator("stage_two_fraction")
    @classmethod
    def _stage_two_fits(cls, fraction: float | None, info: ValidationInfo) -> float | None:
        if fraction is None:
            return fraction
        if "ema_decay" in info.data and info.data["ema_decay"] is None:
            raise ValueError(
                "needs training.ema_decay (stage two's model is the EMA restarted at the "
                "switch), got ema_decay null; set e.g. training.ema_decay=0.99"
            )
        warmup = info.data.get("warmup_fraction")
        if info.data.get("scheduler") == "cosine_time" and warmup is not None:
            if warmup + fraction >= 1:
                raise ValueError(
                    "training.warmup_fraction + training.stage_two_fraction must be < 1 "
                    f"(warm-up and cosine are stage one), got {warmup} + {fraction}"
                )
        return fraction

    @field_validator("stage_two_lr")
    @classmethod
    def _stage_two_lr_lower(cls, lr: float, info: ValidationInfo) -> float:
        first = info.data.get("lr")
        if info.data.get("stage_two_fraction") is not None and first is not None and lr > first:
            raise ValueError(
                f"must be at most training.lr ({first:g}) (stage two continues at a lower "
                f"learning rate), got {lr:g}"
            )
        return lr

    @field_validator("devices")
    @classmethod
    def _positive_devices(cls, devices):
        if devices != "auto" and devices < 1:
            raise ValueError(f"must be >= 1 or 'auto', got {devices}")
        return devices

    @field_validator("accelerator")
    @classmethod
    def _cuda_is_gpu(cls, accelerator: str) -> str:
        return "gpu" if accelerator == "cuda" else accelerator
