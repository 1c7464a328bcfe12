"""Tests for eqna.train.config: schema validation, overrides and error messages."""

from __future__ import annotations

import inspect
import re
import sys
import types
from importlib import resources
from pathlib import Path
from typing import Literal

import pytest
import yaml

from eqna.models.registry import MODEL_BUILDERS
from eqna.train.config import (
    DATA_DERIVED,
    Config,
    ConfigError,
    DataConfig,
    TrainingConfig,
    config_from_dict,
    load_config,
    validate_model_section,
)
from eqna.train.describe import describe_keys

ZOO = Path(str(resources.files("eqna.zoo")))  # the shipped zoo, checkout or wheel


def fake_equivariant(
    elements,
    atomic_energies,
    avg_num_neighbors: float,
    scale: float = 1.0,
    *,
    num_channels: int = 32,
    r_max: float = 5.0,
    radial_mlp: list[int] = (64, 64),  # noqa: B006 - tuple default stored as list
    irreps: tuple[str, ...] = ("0e", "1o"),
    gate: Literal["silu", "tanh"] = "silu",
    use_bias: bool = True,
    correlation: int | None = None,
    neural_atoms: dict | None = None,
    **kwargs,
):
    """Fake builder with the kinds of annotations real builders use."""


def fake_invariant(elements, num_layers: int = 2, cutoff: float = 4.0):
    """Second fake family."""


BUILDERS = {"equivariant": fake_equivariant, "invariant": fake_invariant}

BASE = """\
model:
  family: equivariant
  num_channels: 16
data:
  train: embedded:water
training:
  lr: 1e-3
  max_epochs: 5
"""


def write(tmp_path, text=BASE, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(path, overrides=()):
    return load_config(path, overrides, builders=BUILDERS)


def errors_of(excinfo) -> list[str]:
    return excinfo.value.errors


def test_valid_config_fills_defaults(tmp_path):
    cfg = load(write(tmp_path))
    assert isinstance(cfg, Config)
    assert cfg.name == "run" and cfg.source == str(tmp_path / "run.yaml")
    assert cfg.training.lr == 1e-3 and isinstance(cfg.training.lr, float)
    assert cfg.training.max_epochs == 5
    assert cfg.training.optimizer == "adamw" and cfg.training.ema_decay == 0.99
    assert cfg.data == DataConfig(train="embedded:water")
    assert cfg.model == {
        "family": "equivariant",
        "init_from": None,
        "num_channels": 16,
        "r_max": 5.0,
        "radial_mlp": [64, 64],
        "irreps": ["0e", "1o"],
        "gate": "silu",
        "use_bias": True,
        "correlation": None,
        "neural_atoms": None,
    }
    assert not set(DATA_DERIVED) & set(cfg.model)


def test_int_accepted_for_float_and_minimal_file(tmp_path):
    cfg = load(write(tmp_path, "data:\n  train: a.xyz\ntraining:\n  lr: 1\n"))
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    assert cfg.model["family"] == "equivariant"
    assert cfg.training == TrainingConfig(lr=1.0)


def test_misspelled_key_suggests_and_names_file_and_key(tmp_path):
    path = write(tmp_path, BASE.replace("lr: 1e-3", "lr_rate: 1e-3"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    assert str(excinfo.value) == (
        f"{path}: unknown key 'training.lr_rate' (did you mean 'training.lr'?)"
    )


def test_misspelled_model_key_suggests(tmp_path):
    path = write(tmp_path, BASE.replace("num_channels", "num_chanels"))
    with pytest.raises(
        ConfigError,
        match=r"'model.num_chanels' \(did you mean "
        r"'model.num_channels'\?\)",
    ):
        load(path)


def test_wrong_type_names_key_expected_and_value(tmp_path):
    path = write(tmp_path, BASE.replace("max_epochs: 5", "max_epochs: ten"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    assert str(excinfo.value) == f"{path}: training.max_epochs: expected int, got 'ten' (str)"


def test_bool_rejected_for_int_and_none_for_required(tmp_path):
    text = BASE.replace("max_epochs: 5", "max_epochs: true").replace("lr: 1e-3", "lr: null")
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, text))
    msg = str(excinfo.value)
    assert "training.max_epochs: expected int, got True (bool)" in msg
    assert "training.lr: expected float, got None (NoneType)" in msg


def test_literal_choices_listed(tmp_path):
    path = write(tmp_path, BASE + "  optimizer: sgd\n")
    with pytest.raises(
        ConfigError, match="training.optimizer: expected one of 'adamw', 'adam_amsgrad', got 'sgd'"
    ):
        load(path)


def test_model_annotations_checked(tmp_path):
    text = BASE.replace("num_channels: 16", "radial_mlp: [8, x]\n  gate: relu\n  correlation: 2")
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, text))
    msg = str(excinfo.value)
    assert "model.radial_mlp: expected list[int], got [8, 'x'] (list)" in msg
    assert "model.gate: expected one of 'silu', 'tanh', got 'relu'" in msg
    assert "correlation" not in msg


def test_unknown_section_suggests(tmp_path):
    path = write(tmp_path, BASE.replace("training:", "trainig:"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    assert str(excinfo.value) == (f"{path}: unknown section 'trainig' (did you mean 'training'?)")


def test_unknown_family_lists_families(tmp_path):
    path = write(tmp_path, BASE.replace("family: equivariant", "family: transformer"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    msg = str(excinfo.value)
    assert msg.startswith(f"{path}: model.family: unknown model family 'transformer'")
    assert "equivariant, invariant" in msg


def test_other_family_uses_its_signature(tmp_path):
    cfg = load(
        write(
            tmp_path,
            BASE.replace(
                "family: equivariant\n  num_channels: 16", "family: invariant\n  num_layers: 3"
            ),
        )
    )
    assert cfg.model == {"family": "invariant", "init_from": None, "num_layers": 3, "cutoff": 4.0}


@pytest.mark.parametrize("key", DATA_DERIVED)
def test_data_derived_key_rejected(tmp_path, key):
    path = write(tmp_path, BASE.replace("num_channels: 16", f"{key}: 1.0"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    assert (
        str(excinfo.value) == f"{path}: model.{key}: is computed from the data "
        "and cannot be set in the config"
    )


def test_overrides_parse_values(tmp_path):
    cfg = load(
        write(tmp_path),
        [
            "training.lr=1e-4",
            "data.train=foo.xyz",
            "model.radial_mlp=[32,32]",
            "data.valid=null",
            "training.optimizer=adam_amsgrad",
            "data.e0s.H=-13.6",
        ],
    )
    assert cfg.training.lr == 1e-4 and isinstance(cfg.training.lr, float)
    assert cfg.data.train == "foo.xyz" and cfg.data.valid is None
    assert cfg.model["radial_mlp"] == [32, 32]
    assert cfg.training.optimizer == "adam_amsgrad"
    assert cfg.data.e0s == {"H": -13.6}


def test_override_of_unknown_key(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path), ["training.lr_rate=1e-3"])
    assert str(excinfo.value) == (
        "command-line override 'training.lr_rate=1e-3': unknown key "
        "'training.lr_rate' (did you mean 'training.lr'?)"
    )


def test_override_wrong_type_and_unknown_section(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path), ["training.max_epochs=ten", "trainer.lr=1"])
    assert errors_of(excinfo) == [
        "command-line override 'trainer.lr=1': unknown section 'trainer' "
        "(did you mean 'training'?)",
        "command-line override 'training.max_epochs=ten': training.max_epochs: "
        "expected int, got 'ten' (str)",
    ]


@pytest.mark.parametrize("bad", ["training.lr", "=3", "training..lr=1", "data.train.x=1"])
def test_malformed_override(tmp_path, bad):
    with pytest.raises(ConfigError, match=f"command-line override '{bad}'"):
        load(write(tmp_path), [bad])


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"{path}: config file not found"):
        load(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "data:\n  train: a.xyz\ntraining:\n  lr: [1, 2\n  seed: 3\n")
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    msg = str(excinfo.value)
    assert msg.startswith(f"{path}: YAML syntax error at line ")
    assert "line 5" in msg


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="section 'data' must be a mapping"):
        load(write(tmp_path, "data: 3\n"))


def test_multiple_errors_reported_together(tmp_path):
    text = """\
model:
  num_chanels: 16
  elements: [H]
data:
  valid_fraction: 0.6
  test_fraction: 0.5
  batch_size: 0
training:
  lr: -1
  ema_decay: 1.0
  max_epochs: ten
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    errors = errors_of(excinfo)
    assert str(excinfo.value) == "\n".join(errors)
    assert all(line.startswith(f"{path}: ") for line in errors)
    expected = [
        "unknown key 'model.num_chanels' (did you mean 'model.num_channels'?)",
        "model.elements: is computed from the data",
        "data.valid_fraction + data.test_fraction must be < 1, got 0.6 + 0.5",
        "data.batch_size: must be >= 1, got 0",
        "missing required key 'data.train'",
        "training.lr: must be > 0, got -1",
        "training.ema_decay: must be in (0, 1), got 1.0",
        "training.max_epochs: expected int, got 'ten' (str)",
    ]
    assert len(errors) == len(expected)
    for line, fragment in zip(errors, expected, strict=True):
        assert fragment in line


def test_fraction_sum_and_e0s_checked(tmp_path):
    text = (
        "data:\n  train: a.xyz\n  valid_fraction: 0.5\n  test_fraction: 0.5\n"
        "  e0s: {H: -13.6, xx: 1}\n"
    )
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, text))
    msg = str(excinfo.value)
    assert "data.valid_fraction + data.test_fraction must be < 1" in msg
    assert "'xx' is not an element symbol" in msg


@pytest.mark.parametrize("e0s", ["auto", "isolated", "least_squares", "e0s.xyz", {"H": -1}])
def test_e0s_forms_accepted(e0s):
    cfg = config_from_dict({"data": {"train": "a.xyz", "e0s": e0s}}, builders=BUILDERS)
    assert cfg.data.e0s == (e0s if isinstance(e0s, str) else {"H": -1.0})


def test_round_trip_to_dict(tmp_path):
    cfg = load(write(tmp_path), ["data.e0s={H: -13.6, O: -2000}"])
    d = cfg.to_dict()
    assert list(d) == ["model", "data", "training"]
    assert yaml.safe_load(yaml.safe_dump(d)) == d
    again = config_from_dict(d, source=cfg.source, builders=BUILDERS)
    assert again == cfg
    assert again.to_dict() == d


def test_config_from_dict_does_not_mutate_and_names_source():
    d = {"data": {"train": "x.xyz"}}
    cfg = config_from_dict(d, builders=BUILDERS)
    assert d == {"data": {"train": "x.xyz"}} and cfg.source == "<dict>"
    with pytest.raises(ConfigError, match="^saved: unknown key 'data.trian'"):
        config_from_dict({"data": {"trian": "x"}}, source="saved", builders=BUILDERS)


def test_validate_model_section_directly():
    resolved = validate_model_section({"family": "invariant"}, BUILDERS, "m.yaml")
    assert resolved == {"family": "invariant", "init_from": None, "num_layers": 2, "cutoff": 4.0}
    with pytest.raises(ConfigError, match="^m.yaml: model.num_layers: expected int"):
        validate_model_section({"family": "invariant", "num_layers": 2.5}, BUILDERS, "m.yaml")
    with pytest.raises(ConfigError, match="available families: .*none registered"):
        validate_model_section({}, {}, "m.yaml")


def test_nested_section_checked_against_its_constructor(tmp_path):
    cfg = load(write(tmp_path, BASE + "model:\n  neural_atoms: {num_heads: 2}\n"))
    assert cfg.model["neural_atoms"]["num_heads"] == 2
    assert cfg.model["neural_atoms"]["pooling"] == "equivariant"  # NeuralAtoms' default
    text = BASE.replace("num_channels: 16", "neural_atoms: {num_head: 2, irreps_in: 1x0e}")
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, text), ["model.neural_atoms.pooling=sum"])
    assert errors_of(excinfo) == [
        f"{tmp_path / 'run.yaml'}: unknown key 'model.neural_atoms.num_head' "
        "(did you mean 'model.neural_atoms.num_heads'?)",
        f"{tmp_path / 'run.yaml'}: model.neural_atoms.irreps_in: is set by the model",
        "command-line override 'model.neural_atoms.pooling=sum': model.neural_atoms.pooling: "
        "expected one of 'equivariant', 'invariant', got 'sum' (str)",
    ]


def test_cuda_is_read_as_gpu_and_loggers_checked(tmp_path):
    cfg = load(write(tmp_path), ["training.accelerator=cuda"])
    assert cfg.training.accelerator == "gpu" and cfg.training.loggers == ["csv"]
    assert cfg.to_dict()["training"]["accelerator"] == "gpu"
    cfg = load(write(tmp_path), ["training.loggers=[csv, tensorboard]"])
    assert cfg.training.loggers == ["csv", "tensorboard"]
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path), ["training.loggers=[wandb]", "training.lr=true"])
    assert errors_of(excinfo) == [
        "command-line override 'training.lr=true': training.lr: expected float, got True (bool)",
        "command-line override 'training.loggers=[wandb]': training.loggers: "
        "expected list[one of 'csv', 'tensorboard'], got ['wandb'] (list)",
    ]


def test_base_is_merged_under_the_file(tmp_path):
    write(tmp_path, BASE + "  gate_penalty: 0.5\n", name="common.yaml")
    child = "base: common\nmodel:\n  num_layers: 3\ntraining:\n  max_epochs: 7\n"
    cfg = load(
        write(tmp_path, child.replace("num_layers: 3", "correlation: 2")), ["training.seed=4"]
    )
    assert cfg.model["num_channels"] == 16 and cfg.model["correlation"] == 2
    assert cfg.training.lr == 1e-3 and cfg.training.max_epochs == 7 and cfg.training.seed == 4
    assert cfg.training.gate_penalty == 0.5 and cfg.data.train == "embedded:water"
    assert "base" not in cfg.to_dict() and cfg.name == "run"


def test_bases_apply_in_order_and_have_bases(tmp_path):
    (tmp_path / "parts").mkdir()
    write(tmp_path, "data:\n  train: a.xyz\n  batch_size: 2\n", name="parts/data.yaml")
    write(tmp_path, "base: data.yaml\ndata:\n  batch_size: 3\n", name="parts/small.yaml")
    write(tmp_path, "training:\n  lr: 0.1\ndata:\n  batch_size: 4\n", name="parts/fast.yaml")
    cfg = load(write(tmp_path, "base: [parts/small.yaml, parts/fast.yaml]\n"))
    assert (cfg.data.train, cfg.data.batch_size, cfg.training.lr) == ("a.xyz", 4, 0.1)
    cfg = load(write(tmp_path, "base: [parts/fast.yaml, parts/small.yaml]\n"))
    assert cfg.data.batch_size == 3


def test_base_value_replaced_by_non_mapping(tmp_path):
    write(tmp_path, BASE.replace("num_channels: 16", "neural_atoms: {num_heads: 2}"), "b.yaml")
    cfg = load(write(tmp_path, "base: b\nmodel:\n  neural_atoms: null\n"))
    assert cfg.model["neural_atoms"] is None


def test_errors_name_the_base_file_that_set_the_key(tmp_path):
    base = write(tmp_path, BASE.replace("lr: 1e-3", "lr_rate: 1e-3"), name="common.yaml")
    path = write(tmp_path, "base: common.yaml\ntraining:\n  max_epochs: ten\n")
    with pytest.raises(ConfigError) as excinfo:
        load(path, ["model.num_channels=x"])
    assert errors_of(excinfo) == [
        "command-line override 'model.num_channels=x': model.num_channels: "
        "expected int, got 'x' (str)",
        f"{base}: unknown key 'training.lr_rate' (did you mean 'training.lr'?)",
        f"{path}: training.max_epochs: expected int, got 'ten' (str)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: nope\n", "run.yaml: base config 'nope' not found (looked for "),
        ("base: [../nope.yaml]\n", "run.yaml: base config '../nope.yaml' not found"),
        ("base: 3\n", "run.yaml: base: expected a path or a list of paths, got 3"),
        ("base: run\n", "run.yaml: base configs form a cycle: "),
        ("base: bad\n", "bad.yaml: YAML syntax error at line 3, column 1"),
    ],
)
def test_base_problems(tmp_path, text, message):
    write(tmp_path, "data:\n  train: [a\n", name="bad.yaml")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(write(tmp_path, text))


def test_base_cycle_through_two_files(tmp_path):
    write(tmp_path, "base: b.yaml\n", name="a.yaml")
    write(tmp_path, "base: a.yaml\n", name="b.yaml")
    with pytest.raises(
        ConfigError, match=r"a.yaml: base configs form a cycle: .*a.yaml -> .*b.yaml"
    ):
        load(tmp_path / "a.yaml")


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize(
    ("variant", "changed"),
    [
        ("invariant_na", {"model.neural_atoms.pooling": "invariant"}),
        ("equivariant_na_reciprocal", {"model.neural_atoms.reciprocal": True}),
        (
            "equivariant_na_fixed_k",
            {"model.neural_atoms.learn_gates": False, "training.gate_penalty": 0.0},
        ),
    ],
)
def test_zoo_variants_differ_from_equivariant_na_only_as_stated(variant, changed):
    base = _flat(load_config(ZOO / "equivariant_na.yaml").to_dict())
    resolved = _flat(load_config(ZOO / f"{variant}.yaml").to_dict())
    assert {k: v for k, v in resolved.items() if base[k] != v} == changed
    assert resolved.keys() == base.keys()


def _family_blocks(text: str) -> dict[str, str]:
    blocks = text.split("\nmodel section, family ")
    return {block.split("'")[1]: block for block in blocks[1:]} | {"": blocks[0]}


@pytest.mark.parametrize("builders", [None, BUILDERS], ids=["registry", "fakes"])
def test_describe_keys_lists_every_key(builders):
    text = describe_keys(builders)
    for section, prefix in ((DataConfig, "data."), (TrainingConfig, "training.")):
        for name, field in section.model_fields.items():
            assert f"  {prefix}{name}: " in text
            assert field.description in " ".join(text.split())
    blocks = _family_blocks(text)
    for family, builder in (builders or MODEL_BUILDERS).items():
        params = set(inspect.signature(builder).parameters)
        params -= {"kwargs", "atom_feature_table", "convolution"}  # not settable
        for name in params - set(DATA_DERIVED):
            assert f"  model.{name}: " in blocks[family], (family, name)
    assert "model.neural_atoms.num_heads: int, default 4" in blocks["equivariant"]
    assert "K_max, the most neural atoms per graph." in blocks["equivariant"]
    assert "training.lr: float, default 0.005, > 0" in text


def test_bare_base_name_falls_back_to_the_zoo(tmp_path, monkeypatch):
    zoo = types.ModuleType("eqna.models.zoo")
    zoo.architecture_path = lambda name: tmp_path / "zoo" / f"{name}.yaml"
    monkeypatch.setitem(sys.modules, "eqna.models.zoo", zoo)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "runs").mkdir()
    write(tmp_path, BASE, name="zoo/arch.yaml")
    cfg = load(write(tmp_path, "base: arch\ntraining:\n  seed: 1\n", name="runs/run.yaml"))
    assert cfg.model["num_channels"] == 16 and cfg.training.seed == 1
    with pytest.raises(ConfigError, match="base config 'other' not found .* and the zoo"):
        load(write(tmp_path, "base: other\n", name="runs/run.yaml"))
