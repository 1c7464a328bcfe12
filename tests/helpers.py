"""Small models and configs that several test folders share (tests/ is on sys.path through
its conftest.py)."""

ELEMENTS = [1, 6, 8]

HPARAMS = {
    "elements": ELEMENTS,
    "atomic_energies": [-1.1, -2.3, -3.7],  # not representable in float32, on purpose
    "avg_num_neighbors": 8.0,
    "scale": 1.7,
    "shift": 0.3,
    "r_max": 4.0,
    "num_basis": 6,
    "l_max": 1,
    "num_channels": 8,
    "num_layers": 2,
    "radial_hidden": [16],
    "readout_hidden": 8,
}

EVALUATE_HPARAMS = {
    "elements": [1, 6, 7, 8],
    "atomic_energies": [-10.0, -48.0, -70.0, -102.0],
    "avg_num_neighbors": 7.0,
    "num_channels": 8,
    "radial_hidden": [16],
}

TINY_MODEL = {
    "family": "equivariant",
    "num_channels": 8,
    "radial_hidden": [16],
    "readout_hidden": 8,
    "r_max": 4.0,
}


def tiny_config(**training) -> dict:
    return {
        "model": dict(TINY_MODEL),
        "data": {"train": "embedded:xtb_molecules.xyz", "max_train_frames": 60, "batch_size": 4},
        "training": {"max_epochs": 2, "progress_bar": False, "seed": 1, **training},
    }


ZOO_ELEMENTS = [1, 6, 8]
ZOO_DERIVED = {"elements": ZOO_ELEMENTS, "atomic_energies": [-13.6, -1029.5, -2041.3]}


def zoo_architecture(path, **overrides):
    """(model, family, hparams): the zoo architecture YAML ``path`` with random weights (seed 0)
    on H/C/O, at its real size unless ``overrides``; a float32 AtomisticModel in training mode."""
    import torch

    from eqna.models.io import build_model, builder_hparams
    from eqna.train.config import load_config

    model = {**load_config(path).model, **overrides}
    family = model.pop("family")
    torch.manual_seed(0)
    hparams = {**model, **ZOO_DERIVED, "avg_num_neighbors": 10.0, "scale": 1.3, "shift": -0.2}
    if model.get("output") == "property":
        hparams.update(atomic_energies=None, target_mean=[-1.0], target_std=[0.5])
    if model.get("output") in ("classification", "multilabel"):
        hparams.update(atomic_energies=None, classes=["a", "b", "c"])
    hparams = builder_hparams(family, hparams)
    return build_model(family, hparams), family, hparams
