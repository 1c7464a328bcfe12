"""Tests for the CGCNN-style element property table (eqna.data.elements)."""

import csv

import numpy as np
import pytest
from ase.data import atomic_numbers

from eqna.data.elements import (
    BLOCKS,
    PROPERTY_COLUMNS,
    UnknownElementPropertiesError,
    element_property_table,
    table_path,
)

ALL_Z = list(range(1, 101))
H, C, OX, F, NE, NA, MG, SI, CS = (atomic_numbers[s] for s in "H C O F Ne Na Mg Si Cs".split())


def _csv_rows() -> dict[int, dict[str, str]]:
    with open(table_path(), newline="", encoding="utf-8") as handle:
        return {int(r["Z"]): r for r in csv.DictReader(handle)}


def _feature(z: int, name: str) -> float:
    table, names = element_property_table([z])
    return table[0, names.index(name)]


def _raw(z: int, name: str) -> str:
    return _csv_rows()[z][name]


def test_shape_and_names():
    table, names = element_property_table([H, C, OX])
    assert table.dtype == np.float64
    assert table.shape == (3, len(names))
    assert names[: len(PROPERTY_COLUMNS)] == list(PROPERTY_COLUMNS)
    assert [f"block_{b}" for b in BLOCKS] == names[
        len(PROPERTY_COLUMNS) : len(PROPERTY_COLUMNS) + 4
    ]
    missing = [n for n in names if n.endswith("_missing")]
    assert set(missing) == {"electronegativity_missing", "electron_affinity_missing",
                            "atomic_volume_missing"}  # fmt: skip
    assert len(set(names)) == len(names)
    empty, _ = element_property_table([])
    assert empty.shape == (0, len(names))


def test_covers_h_to_fm_and_finite():
    assert sorted(_csv_rows()) == ALL_Z
    table, _ = element_property_table(ALL_Z)
    assert np.isfinite(table).all()


def test_standardised_over_whole_table():
    table, names = element_property_table(ALL_Z)
    numeric = table[:, : len(PROPERTY_COLUMNS)]
    np.testing.assert_allclose(numeric.mean(axis=0), 0.0, atol=1e-12)
    complete = [i for i, n in enumerate(PROPERTY_COLUMNS) if f"{n}_missing" not in names]
    np.testing.assert_allclose(numeric[:, complete].std(axis=0), 1.0, rtol=1e-12)
    # independent of which elements are requested
    sub, _ = element_property_table([OX, SI])
    np.testing.assert_array_equal(sub, table[[OX - 1, SI - 1]])


def test_missing_indicator_matches_empty_cells():
    rows = _csv_rows()
    table, names = element_property_table(ALL_Z)
    for name in ("electronegativity", "electron_affinity", "atomic_volume"):
        empty = np.array([rows[z][name] == "" for z in ALL_Z])
        assert empty.any()
        np.testing.assert_array_equal(table[:, names.index(f"{name}_missing")], empty)
        np.testing.assert_array_equal(table[empty, names.index(name)], 0.0)
    # known gaps: Ne and Mg have no electron affinity, Ne no Pauling electronegativity,
    # O (a gas at STP) no atomic volume; C has all three
    assert _raw(NE, "electron_affinity") == "" and _raw(MG, "electron_affinity") == ""
    assert _feature(NE, "electron_affinity_missing") == 1.0
    assert _feature(MG, "electron_affinity_missing") == 1.0
    assert _feature(NE, "electronegativity_missing") == 1.0
    assert _feature(OX, "atomic_volume_missing") == 1.0
    for name in ("electronegativity", "electron_affinity", "atomic_volume"):
        assert _feature(C, f"{name}_missing") == 0.0


def test_order_follows_request():
    table, _ = element_property_table([SI, H, SI, CS])
    full, _ = element_property_table(ALL_Z)
    np.testing.assert_array_equal(table, full[[SI - 1, H - 1, SI - 1, CS - 1]])
    np.testing.assert_array_equal(element_property_table(np.array([C, H]))[0], full[[C - 1, 0]])


@pytest.mark.parametrize("bad, symbol", [(0, "X"), (101, "Md"), (118, "Og")])
def test_unknown_element(bad, symbol):
    with pytest.raises(UnknownElementPropertiesError) as info:
        element_property_table([H, bad])
    message = str(info.value)
    assert f"{symbol} (Z={bad})" in message
    assert str(table_path()) in message
    assert "1..100" in message
    assert isinstance(info.value, ValueError)


def test_chemical_sanity():
    en = [_feature(z, "electronegativity") for z in (F, OX, C, NA)]
    assert en == sorted(en, reverse=True) and len(set(en)) == 4
    radius = [_feature(z, "covalent_radius") for z in (CS, NA, H)]
    assert radius == sorted(radius, reverse=True) and len(set(radius)) == 3
    assert _feature(NE, "ionisation_energy") > _feature(NA, "ionisation_energy")
    assert _feature(CS, "atomic_volume") > _feature(SI, "atomic_volume")
    rows = _csv_rows()
    assert (rows[SI]["group"], rows[SI]["period"], rows[SI]["block"]) == ("14", "3", "p")
    assert _feature(SI, "block_p") == 1.0 and _feature(SI, "block_s") == 0.0
    assert rows[OX]["valence_electrons"] == "6" and rows[NA]["valence_electrons"] == "1"
    assert float(rows[F]["electronegativity"]) == pytest.approx(3.98)
    assert float(rows[C]["covalent_radius"]) == pytest.approx(0.75)  # Å, not pm
    assert float(rows[H]["ionisation_energy"]) == pytest.approx(13.598, abs=1e-3)  # eV
    assert float(rows[CS]["atomic_volume"]) == pytest.approx(70.96, abs=0.1)  # cm^3/mol
    lanthanides = [rows[z] for z in range(58, 72)]  # Ce..Lu: f block, group 3 by choice
    assert all(r["block"] == "f" and r["group"] == "3" for r in lanthanides)
