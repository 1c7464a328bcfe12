"""Generate ``eqna/data/embedded/element_properties.{csv,md}`` from mendeleev.

A CGCNN-style ("atom_init") table of tabulated element properties for Z = 1..100, read by
:mod:`eqna.data.elements` at run time (which does not import mendeleev). Missing values are
written as empty cells, never filled. The one deliberate deviation from mendeleev's data: the
f-block elements (Ce-Lu, Th-Lr), which mendeleev leaves without a group, are put in group 3.
Atomic volumes of elements that are gases at STP are left empty (see ``_atomic_volume``).

Usage::

    pip install "mendeleev>=0.15"   # or: pip install -e ".[tables]"
    python tools/make_element_table.py
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import mendeleev

OUT_DIR = Path(__file__).resolve().parents[1] / "eqna" / "data" / "embedded"
F_BLOCK_GROUP = 3  # group assigned to f-block elements, which mendeleev leaves without one
GAS_DENSITY = 0.1  # g/cm^3; below this mendeleev's density is that of the gas at STP


def _atomic_volume(el) -> float | None:
    """atomic_weight / density (cm^3/mol), None for elements that are gases at STP.

    For those mendeleev gives the gas density, so the ratio is the ideal-gas molar volume
    (~22,400 cm^3/mol), which says nothing about atomic size.
    """
    if el.density is None or el.density < GAS_DENSITY:
        return None
    return el.atomic_weight / el.density


def _radius(pm: float | None) -> float | None:
    return None if pm is None else pm / 100.0


# (column, unit, definition, getter); the order is the CSV column order.
COLUMNS = [
    ("Z", "-", "atomic number", lambda el: el.atomic_number),
    ("symbol", "-", "chemical symbol", lambda el: el.symbol),
    ("group", "-", f"IUPAC group 1-18; f-block set to {F_BLOCK_GROUP}", lambda el: el.group_id),
    ("period", "-", "period 1-7", lambda el: el.period),
    ("block", "-", "s, p, d or f (mendeleev: La, Ac in d; Lu, Lr in f)", lambda el: el.block),
    ("mendeleev_number", "-", "Pettifor-style Mendeleev number", lambda el: el.mendeleev_number),
    ("atomic_mass", "Da", "standard atomic weight (most stable isotope if none)",
     lambda el: el.atomic_weight),
    ("electronegativity", "-", "Pauling electronegativity", lambda el: el.en_pauling),
    ("covalent_radius", "Å", "single-bond covalent radius, Pyykkö & Atsumi (2009)",
     lambda el: _radius(el.covalent_radius_pyykko)),
    ("ionisation_energy", "eV", "first ionisation energy", lambda el: el.ionenergies.get(1)),
    ("electron_affinity", "eV", "electron affinity; negative = unbound anion (He -19.7, Ar -11.5"
     " are metastable-anion energies above the neutral: outliers)",
     lambda el: el.electron_affinity),
    ("valence_electrons", "-", "mendeleev Element.nvalence(): outer s+p; d: ns+(n-1)d; "
     "f: ns+np+(n-1)d+(n-2)f", lambda el: el.nvalence()),
    ("atomic_volume", "cm³/mol", "atomic_weight / density of the condensed element; "
     "empty for gases at STP", _atomic_volume),
    ("polarizability", "bohr³", "static dipole polarisability of the neutral atom",
     lambda el: el.dipole_polarizability),
]  # fmt: skip


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def _rows(z_max: int) -> list[dict[str, str]]:
    rows = []
    for z in range(1, z_max + 1):
        el = mendeleev.element(z)
        row = {name: _cell(get(el)) for name, _, _, get in COLUMNS}
        if el.block == "f" and not row["group"]:
            row["group"] = str(F_BLOCK_GROUP)
        rows.append(row)
    return rows


def _provenance(rows: list[dict[str, str]], z_max: int) -> str:
    lines = [
        "# Element property table: `element_properties.csv`",
        "",
        f"Tabulated properties of the elements Z = 1..{z_max} (H..{rows[-1]['symbol']}), used by",
        "`eqna.data.elements.element_property_table` as CGCNN-style atom features.",
        "",
        f"- Source: [mendeleev](https://github.com/lmmentel/mendeleev) {mendeleev.__version__}"
        " (its bundled SQLite database; the data's own references are listed there).",
        "- Licence: mendeleev and its data are MIT-licensed.",
        '- Regenerate: `pip install -e ".[tables]" && python tools/make_element_table.py`',
        "- Missing values are empty cells, never filled in the file.",
        f"- Deviation from mendeleev: f-block elements (no group in mendeleev) get group"
        f" {F_BLOCK_GROUP}.",
        "- Atomic volume is left empty for the elements that are gases at STP: mendeleev's density"
        " for them is the gas density, so the ratio would be the ideal-gas molar volume.",
        "",
        "| Column | Unit | Definition | Missing for |",
        "|---|---|---|---|",
    ]
    for name, unit, definition, _ in COLUMNS:
        missing = ", ".join(r["symbol"] for r in rows if not r[name]) or "-"
        lines.append(f"| `{name}` | {unit} | {definition} | {missing} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--z-max", type=int, default=100)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = _rows(args.z_max)
    csv_path = args.out_dir / "element_properties.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c[0] for c in COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    md_path = args.out_dir / "element_properties.md"
    md_path.write_text(_provenance(rows, args.z_max), encoding="utf-8")
    print(f"wrote {csv_path} ({len(rows)} elements) and {md_path}")


if __name__ == "__main__":
    main()
