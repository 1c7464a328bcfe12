"""Batches bounded by atoms: never over budget, every structure once per epoch, a length that
matches each epoch, and a training that uses them."""

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_config

from eqna.data import keys
from eqna.data.batching import AtomBudgetBatches
from eqna.data.datasets import DataError
from eqna.data.prepare import make_loader, prepare_data, shuffle_generator
from eqna.train.config import config_from_dict


@pytest.fixture(scope="module")
def dataset():
    config = config_from_dict(tiny_config())
    return prepare_data(config.data, 4.0).train  # xTB molecules of 1 to 15 atoms


def test_batches_stay_within_the_budget_and_cover_each_epoch(dataset):
    loader = make_loader(dataset, 8, torch.float64, True, seed=1, max_atoms=40)
    sizes = [int(g[keys.NUM_ATOMS]) for g in dataset.graphs]
    for _ in range(3):
        expected = len(loader)
        batches = list(loader)
        assert len(batches) == expected  # len() planned this very epoch
        assert all(int(b[keys.NUM_ATOMS].sum()) <= 40 for b in batches)
        assert all(len(b[keys.NUM_ATOMS]) <= 8 for b in batches)
        seen = sorted(int(n) for b in batches for n in b[keys.NUM_ATOMS])
        assert seen == sorted(sizes)  # every structure once
    assert shuffle_generator(loader) is loader.batch_sampler.generator is not None


def test_budget_batching_is_greedy_in_order():
    sizes = np.array([3, 4, 5, 1, 6, 2])
    assert list(AtomBudgetBatches(sizes, 3, 8)) == [[0, 1], [2, 3], [4, 5]]
    assert list(AtomBudgetBatches(sizes, 2, 100)) == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(DataError, match=r"train.xyz: structure 4 has 6 atoms, more than data"):
        AtomBudgetBatches(sizes, 3, 5, name="train.xyz")


def test_under_ddp_every_process_takes_as_many_batches(monkeypatch):
    sizes = np.array([3, 4, 5, 1, 6, 2, 7])
    shares = {}
    for rank in range(2):
        monkeypatch.setattr("eqna.data.batching.rank_and_world", lambda r=rank: (r, 2))
        shares[rank] = list(AtomBudgetBatches(sizes, 2, 8))
        unpadded = list(AtomBudgetBatches(sizes, 2, 8, pad=False))
        shares[f"eval{rank}"] = unpadded
    assert len(shares[0]) == len(shares[1])
    evaluated = sorted(i for r in range(2) for b in shares[f"eval{r}"] for i in b)
    assert evaluated == list(range(7))


def test_training_with_an_atom_budget(tmp_path, dataset):
    from eqna.train.cli import main

    config = tiny_config(max_epochs=3)
    config["data"]["max_atoms_per_batch"] = 12  # below 4 structures' atoms: more, smaller steps
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main([str(tmp_path / "c.yaml"), "-o", str(tmp_path / "run")]) == 0
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    sizes = np.array([int(g[keys.NUM_ATOMS]) for g in dataset.graphs])
    by_count, by_atoms = -(-len(sizes) // 4), -(-int(sizes.sum()) // 12)  # batches at least
    assert last["global_step"] >= 3 * by_atoms > 3 * by_count
