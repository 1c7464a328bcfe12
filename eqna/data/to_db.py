"""``eqna-db IN... -o OUT.db``: structures from any ASE-readable file into an ASE database.

``ase convert in.xyz out.db`` keeps positions, cell and the calculator results but drops
``atoms.info`` and the extra per-atom arrays (``config_type``, ``REF_energy``, ``REF_forces``,
...). This keeps all of it, so a model trains on the database exactly as on the file: scalar
info entries become key-value pairs (searchable: ``data.select: config_type=bulk``); anything
else, and keys ASE reserves, goes to the row's ``data``; :mod:`eqna.data.ase_db` reads it back.

The database is written under a temporary name beside the output and renamed when complete,
so a killed conversion never leaves a file that looks finished.
"""

import os
import sys
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from eqna.data.ase_db import ARRAYS_KEY
from eqna.data.errors import DataError

# per-atom arrays an ASE database row stores itself
_ROW_ARRAYS = {"numbers", "positions", "momenta", "masses", "tags", "initial_magmoms"}
_ROW_ARRAYS |= {"initial_charges"}


def row_fields(atoms: Atoms) -> tuple[dict, dict]:
    """(key_value_pairs, data) that carry ``atoms.info`` and its extra arrays into a row."""
    from ase.db.core import check

    pairs, data = {}, {}
    for key, value in atoms.info.items():
        if isinstance(value, np.generic):
            value = value.item()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a key that reads as a formula selects atoms
                check({key: value})
            pairs[key] = value
        except (ValueError, UserWarning):
            data[key] = value
    arrays = [key for key in atoms.arrays if key not in _ROW_ARRAYS]
    for key in arrays:
        data[key] = np.asarray(atoms.arrays[key])
    if arrays:
        data[ARRAYS_KEY] = arrays
    return pairs, data


def write_ase_db(sources: list[str], output: Path, log=print) -> int:
    """Every frame of ``sources`` into a new database ``output``; returns the rows written."""
    import ase.db
    import ase.io

    partial = output.with_name(f".{output.name}.partial")
    partial.unlink(missing_ok=True)
    written = 0
    try:
        with ase.db.connect(str(partial), type="db", use_lock_file=False) as db:
            for spec in sources:
                count = 0
                try:
                    for atoms in ase.io.iread(spec, index=":"):
                        pairs, data = row_fields(atoms)
                        db.write(atoms, key_value_pairs=pairs, data=data)
                        count += 1
                except Exception as err:  # ASE readers raise many types for a bad file
                    raise DataError(f"{spec} frame {count}: cannot be converted ({err})") from err
                log(f"{spec}: {count} structures")
                written += count
        if written == 0:
            raise DataError(f"{', '.join(sources)}: no structures")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return written


def main(argv: list[str] | None = None) -> int:
    from eqna.cli import command_parser, user_error

    parser = command_parser("eqna-db", __doc__)
    parser.add_argument("data", nargs="+", help="structure files (any ASE format)")
    parser.add_argument("-o", "--output", required=True, help="database to write (.db)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    output = Path(args.output).expanduser()
    try:
        if output.suffix != ".db":
            raise DataError(f"{output}: the output needs the suffix .db (an SQLite ASE database)")
        if output.exists() and not args.force:
            raise DataError(f"{output}: exists (pass --force to replace it)")
        if not output.parent.is_dir():
            raise DataError(f"{output}: folder {output.parent} does not exist")
        missing = [spec for spec in args.data if not Path(spec).is_file()]
        if missing:
            raise DataError(f"{', '.join(missing)}: file not found")
        written = write_ase_db(args.data, output)
    except DataError as err:
        return user_error(err, args.debug)
    print(f"wrote {written} structures to {output}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
