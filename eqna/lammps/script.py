"""Run a LAMMPS input script whose potential is an eqna model.

    python -m eqna.lammps MODEL INPUT.lammps [--var NAME VALUE ...] [--types C H O]

The script is plain LAMMPS (``units metal``, ``atom_style atomic``) with the eqna model as a
``fix external``::

    fix eqna all external pf/callback 1 1

Right after that line the model is attached to the fix (its energy and virial enter ``pe``,
``press``, ``fix npt``...). Commands run one at a time through the LAMMPS library, so a
script may ``include`` files but not loop (``jump``/``label``/``next``: use the Python API,
:func:`eqna.lammps.attach`). A LAMMPS error or a failed model call is an error naming the
script and line; the command exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eqna.cli import command_parser, configure_logging, user_error
from eqna.lammps.fix import EqnaPotential
from eqna.lammps.library import new_lammps

UNSUPPORTED = ("jump", "label", "next")  # loops need LAMMPS to read the file itself


class ScriptError(ValueError):
    """An input script eqna.lammps cannot run, named by file and line."""


def commands(path: Path):
    """(file, line number, command) of a LAMMPS script: ``&`` continuations joined, comments
    dropped, ``include`` files expanded in place (paths relative to the working directory,
    as LAMMPS reads them)."""
    if not path.is_file():
        raise ScriptError(f"{path}: no such LAMMPS input script")
    pending, first = "", None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = _without_comment(raw).rstrip()
        if first is None:
            first = number
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        text, start = (pending + line).strip(), first
        pending, first = "", None
        if not text:
            continue
        word = text.split()[0]
        if word == "include":
            yield from commands(Path(text.split()[1]))  # as LAMMPS: relative to the cwd
            continue
        if word in UNSUPPORTED:
            raise ScriptError(
                f"{path} line {start}: `{word}` (a loop) is not supported by eqna.lammps; "
                "drive the loop from Python with eqna.lammps.attach"
            )
        yield path, start, text


def _without_comment(line: str) -> str:
    quote = None
    for i, char in enumerate(line):
        if char in "\"'" and quote in (None, char):
            quote = None if quote == char else char
        elif char == "#" and quote is None:
            return line[:i]
    return line


def _external_fix_id(text: str) -> str | None:
    words = text.split()
    if len(words) >= 4 and words[0] == "fix" and words[3] == "external":
        if words[4:5] != ["pf/callback"]:
            raise ScriptError(f"`{text}`: eqna needs `external pf/callback 1 1`")
        return words[1]
    return None


def run_script(model, path, variables=(), types=None, device="cpu", dtype=None, quiet=False):
    """Run the script at ``path`` with ``model`` on its external fix; returns the LAMMPS
    instance (closed by the caller) and the :class:`EqnaPotential`."""
    path = Path(path)
    args = [word for name, value in variables for word in ("-var", name, value)]
    lmp = new_lammps(*args, quiet=quiet)
    potential = None
    for where, number, text in commands(path):
        word = text.split()[0]
        if word in ("run", "minimize", "rerun") and potential is None:
            raise ScriptError(
                f"{where} line {number}: `{word}` before the eqna potential; add "
                "`fix eqna all external pf/callback 1 1` after the atoms are defined"
            )
        try:
            lmp.command(text)
        except Exception as err:  # LAMMPS' own error, as its Python module raises it
            failed = potential.error if potential is not None else None
            if failed is not None:  # the model's failure halted LAMMPS: say what failed
                raise ScriptError(
                    f"{where} line {number}: `{text}`: the model failed: {failed}"
                ) from failed
            raise ScriptError(f"{where} line {number}: `{text}`: {err}") from err
        if potential is not None:
            potential.raise_error()
        fix_id = _external_fix_id(text)
        if fix_id is not None:
            potential = EqnaPotential(lmp, model, fix_id, types=types, device=device, dtype=dtype)
    return lmp, potential


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m eqna.lammps", __doc__)
    parser.add_argument("model", help="model.pt, exported .pt2 (eqna-export), or a zoo name")
    parser.add_argument("script", type=Path, help="LAMMPS input script")
    parser.add_argument(
        "--var",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a LAMMPS index variable, as `lmp -var NAME VALUE` (repeatable)",
    )
    parser.add_argument(
        "--types",
        nargs="+",
        metavar="SYMBOL",
        help="element of each LAMMPS type, type 1 first (default: from masses)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"))
    args = parser.parse_args(argv)
    configure_logging()
    try:
        lmp, _ = run_script(args.model, args.script, args.var, args.types, args.device, args.dtype)
    except (ScriptError, ValueError, RuntimeError, ImportError, FileNotFoundError) as err:
        return user_error(err, args.debug)
    lmp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
