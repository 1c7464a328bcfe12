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
