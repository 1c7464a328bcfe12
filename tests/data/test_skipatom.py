"""SkipAtom embeddings: hand-counted co-occurrences, learned similarity, CLI and file errors."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from eqna.data.skipatom import (
    SkipAtomError,
    cooccurrence,
    count_pairs,
    load_skipatom,
    main,
    save_skipatom,
    train_skipatom,
)

NA, CL, K, BR, FE = 11, 17, 19, 35, 26
ROCKSALTS = [("NaCl", 5.64), ("KCl", 6.29), ("NaBr", 5.97), ("KBr", 6.60), ("LiCl", 5.13)]


def _rocksalts() -> list[Atoms]:
    return [bulk(formula, "rocksalt", a=a) for formula, a in ROCKSALTS]


def _cosine(vectors: np.ndarray, elements: list[int], a: int, b: int) -> float:
    u, v = vectors[elements.index(a)], vectors[elements.index(b)]
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def test_counts_match_hand_count_in_rocksalt():
    nacl = bulk("NaCl", "rocksalt", a=5.64)  # shells: 6 Cl at 2.82, 12 Na at 3.99, 8 Cl at 4.88
    elements, counts = cooccurrence([nacl], r_max=5.0, max_neighbors=6)
    assert elements == [NA, CL]
    np.testing.assert_array_equal(counts, [[0, 6], [6, 0]])
    _, counts = cooccurrence([nacl], r_max=5.0, max_neighbors=18)
    np.testing.assert_array_equal(counts, [[12, 6], [6, 12]])
    _, counts = cooccurrence([nacl.repeat(2)], r_max=5.0, max_neighbors=26)  # 8 atoms of each
    np.testing.assert_array_equal(counts, 8 * np.array([[12, 14], [14, 12]]))


def test_counts_are_centre_by_row():
    caf2 = bulk("CaF2", "fluorite", a=5.46)  # Ca has 8 F at 2.36 Å, F has 4 Ca at 2.36 Å
    elements, counts = cooccurrence([caf2], r_max=3.0, max_neighbors=4)
    assert elements == [9, 20]
    np.testing.assert_array_equal(counts, [[0, 2 * 4], [4, 0]])  # F->Ca: 2 F x 4; Ca->F: 4


def test_structures_without_pairs_are_skipped_and_add_no_element():
    lone = Atoms("Ar", positions=[[0.0, 0.0, 0.0]])
    far = Atoms("FeO", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])
    counts, skipped = count_pairs([lone, bulk("NaCl", "rocksalt", a=5.64), far], 5.0, 6)
    assert skipped == 2 and counts.sum() == 12
    assert cooccurrence([lone], 5.0, 6)[0] == []


def test_bad_settings_and_degenerate_cell_are_named():
    with pytest.raises(ValueError, match="max_neighbors"):
        cooccurrence(_rocksalts(), 5.0, 0)
    flat = Atoms("Na", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True)
    with pytest.raises(ValueError, match="salts.xyz: structure 1"):
        count_pairs([bulk("NaCl", "rocksalt", a=5.64), flat], 5.0, 6, where="salts.xyz")


def _row_entropy(counts: np.ndarray) -> float:
    """Lowest reachable loss: entropy of the neighbour element given the centre element."""
    rows = counts / counts.sum(axis=1, keepdims=True)
    return -(counts * np.log(np.where(counts > 0, rows, 1))).sum() / counts.sum()


def test_training_reaches_the_row_entropy_with_asymmetric_counts():
    counts = np.array([[8, 1, 1], [2, 3, 5], [6, 0, 4]])  # columns are not rows: centre by row
    vectors, loss = train_skipatom([1, 6, 8], counts, dim=4, epochs=500, lr=0.05, seed=0)
    assert vectors.shape == (3, 4)
    assert loss == pytest.approx(_row_entropy(counts), abs=2e-3)
    with pytest.raises(ValueError, match="shape"):
        train_skipatom([1, 6], counts, dim=4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cations_sharing_contexts_are_similar(seed):
    elements, counts = cooccurrence(_rocksalts(), r_max=6.0, max_neighbors=6)
    vectors, loss = train_skipatom(elements, counts, dim=8, epochs=300, lr=0.05, seed=seed)
    assert vectors.shape == (len(elements), 8) and vectors.dtype == np.float64
    assert _cosine(vectors, elements, NA, K) > 0.5 > 0.0 > _cosine(vectors, elements, NA, CL)
    assert _cosine(vectors, elements, CL, BR) > _cosine(vectors, elements, K, BR)
    # cation rows are 50/50 over two anions, Cl 1/3 each over three cations, Br 50/50
    assert loss == pytest.approx(_row_entropy(counts), abs=2e-3)
    again, _ = train_skipatom(elements, counts, dim=8, epochs=300, lr=0.05, seed=seed)
    np.testing.assert_array_equal(vectors, again)


def test_cli_writes_embedding_that_loads(tmp_path, capsys):
    data = tmp_path / "salts.xyz.gz"
    ase.io.write(data, _rocksalts() + [Atoms("Ar")], format="extxyz")
    out = tmp_path / "emb.json"
    args = [str(data), "-o", str(out), "--dim", "4", "--epochs", "50", "--r-max", "6"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["format"] == "eqna-skipatom" and doc["version"] == 1 and doc["dim"] == 4
    assert list(doc["elements"]) == ["Li", "Na", "Cl", "K", "Br"]  # by atomic number
    assert doc["settings"] == {
        "r_max": 6.0,
        "max_neighbors": 12,
        "epochs": 50,
        "lr": 0.05,
        "seed": 0,
    }
    assert doc["sources"] == [str(data)]
    assert (doc["num_structures"], doc["skipped_structures"]) == (6, 1)
    assert doc["num_pairs"] == 5 * 2 * 12 and np.isfinite(doc["final_loss"])
    vectors = load_skipatom(out, [CL, NA, CL])
    assert vectors.shape == (3, 4) and vectors.dtype == np.float64
    np.testing.assert_array_equal(vectors[0], doc["elements"]["Cl"])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("content", ["this is not a structure file\n", None])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, content):
    good = tmp_path / "good.xyz"
    ase.io.write(good, _rocksalts(), format="extxyz")
    bad = tmp_path / "bad.xyz"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "emb.json"
    assert main([str(good), str(bad), "-o", str(out)]) == 2
    assert "bad.xyz" in capsys.readouterr().err
    written = {p.name for p in tmp_path.iterdir()} - {"good.xyz", "bad.xyz"}
    assert not written, f"bad input must write nothing, found {written}"


def test_cli_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "x.xyz"), "-o", str(tmp_path / "e.json"), "--r-max", "-1"])
    assert exit_info.value.code == 2 and not (tmp_path / "e.json").exists()


@pytest.fixture
def small_file(tmp_path):
    vectors = np.arange(6.0).reshape(2, 3) + 0.25
    return save_skipatom(tmp_path / "emb.json", [CL, NA], vectors, {"sources": ["s.xyz"]})


def test_round_trip_in_requested_order(small_file):
    np.testing.assert_array_equal(
        load_skipatom(small_file, [NA, CL]), [[3.25, 4.25, 5.25], [0.25, 1.25, 2.25]]
    )
    assert load_skipatom(small_file, []).shape == (0, 3)


def test_missing_element_is_named_with_the_file_and_the_fix(small_file):
    with pytest.raises(SkipAtomError) as err:
        load_skipatom(small_file, [NA, FE, CL])
    message = str(err.value)
    assert "Fe" in message and str(small_file) in message and "eqna-skipatom" in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda doc: "{not json", "not a JSON file"),
        (lambda doc: json.dumps([1, 2]), "format"),
        (lambda doc: json.dumps({**doc, "format": "word2vec"}), "format"),
        (
            lambda doc: json.dumps({**doc, "elements": {"Na": [1.0, 2.0, 3.0], "Cl": [1.0]}}),
            "unequal",
        ),
        (lambda doc: json.dumps({**doc, "elements": {"Xx": [1.0, 2.0, 3.0]}}), "Xx"),
        (lambda doc: json.dumps({**doc, "elements": {"Na": ["a", 2.0, 3.0]}}), "Na"),
        (lambda doc: json.dumps({**doc, "dim": 5}), "dim"),
    ],
)
def test_malformed_file_is_named(small_file, edit, what):
    small_file.write_text(edit(json.loads(small_file.read_text())))
    with pytest.raises(SkipAtomError, match=what) as err:
        load_skipatom(small_file, [NA])
    assert str(small_file) in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SkipAtomError, match="nowhere.json: SkipAtom embedding file not found"):
        load_skipatom(tmp_path / "nowhere.json", [NA])
