"""Export a trained potential to one .pt2 file that runs without eqna's model code.

    eqna-export acac-equivariant-na -o acac.pt2                 # AOTInductor (minutes)
    eqna-export runs/x/model.pt -o x.pt2 --kind program --dtype float64
    eqna-export MODEL -o FILE.pt2 --atomic-virial               # for LAMMPS compute stress/atom

The file works wherever a model.pt does: ``EqnaCalculator("x.pt2")``, ``eqna-md``,
``python -m eqna.lammps x.pt2 in.lammps``. After writing, the export is checked against the
eager model on two structures it was not traced on (energy, forces, stress); a mismatch beyond
1e-9 (float64) / 1e-4 (float32) relative is an error and the file is removed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np

from eqna.cli import command_parser, configure_logging, user_error
from eqna.export.exported import KINDS, ExportedModel, export_model
from eqna.export.trace import UnsupportedForExport, example_structure

LOG = logging.getLogger("eqna.export")
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}  # relative to the largest reference value


def parity(model, exported: ExportedModel, structures) -> dict[str, float]:
    """Largest |exported - eager| / max|eager| of energy, forces and stress over ``structures``."""
    from eqna.calculators import EqnaCalculator

    worst = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    calculators = [EqnaCalculator(m, dtype=exported.dtype) for m in (model, exported)]
    for atoms in structures:
        properties = ["energy", "forces"] + (["stress"] if atoms.pbc.all() else [])
        results = []
        for calc in calculators:
            calc.calculate(atoms.copy(), properties)
            results.append(calc.results)
        for key in worst:
            if key in results[0]:
                ref, got = np.asarray(results[0][key]), np.asarray(results[1][key])
                scale = max(float(np.abs(ref).max()), 1e-12)
                worst[key] = max(worst[key], float(np.abs(got - ref).max()) / scale)
    return worst


def check_structures(elements, r_max):
    """A periodic cell and a free cluster, both unlike the traced structure."""
    crystal = example_structure(elements, r_max, seed=1).repeat((2, 1, 1))
    cluster = example_structure(elements, r_max, seed=2)[:5]
    cluster.pbc, cluster.cell = False, None
    cluster.rattle(0.05, seed=3)
    return [crystal, cluster]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("eqna-export", __doc__)
    parser.add_argument("model", help="model.pt, or a zoo name (eqna-zoo list)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .pt2 to write")
    parser.add_argument("--kind", choices=KINDS, default="aoti",
                        help="aoti: compiled, fast (default); program: quick to write")  # fmt: skip
    parser.add_argument("--dtype", choices=("float32", "float64"),
                        help="dtype of the export (default: the model's)")  # fmt: skip
    parser.add_argument("--atomic-virial", action="store_true", help="also the per-atom virial")
    args = parser.parse_args(argv)
    configure_logging()
    from eqna.calculators.ase import prepare_model  # the calculator imports eqna.export

    try:
        model, info = prepare_model(args.model, "cpu", args.dtype)
        if isinstance(model, ExportedModel):
            raise ValueError(f"{args.model}: already an exported model")
        start = time.perf_counter()
        export_model(model, args.output, args.kind, args.atomic_virial, info)
        LOG.info("wrote %s (%s, %s) in %.0f s", args.output, args.kind,
                 str(model.dtype)[6:], time.perf_counter() - start)  # fmt: skip
        exported = ExportedModel(args.output)
        worst = parity(model, exported, check_structures(model.elements, model.r_max))
        limit = TOLERANCE[exported.info["dtype"]]
        LOG.info("exported vs eager, largest relative difference: %s",
                 ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))  # fmt: skip
        if max(worst.values()) > limit:
            args.output.unlink()
            raise RuntimeError(
                f"the export differs from the eager model by {max(worst.values()):.1e} "
                f"(relative; the limit is {limit:g}); {args.output} was removed"
            )
    except (UnsupportedForExport, ValueError, FileNotFoundError, TypeError) as err:
        return user_error(err, args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
