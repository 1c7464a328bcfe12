"""Exported model files (``.pt2``): writing them and running them with the model interface.

Two kinds, both one file with eqna's metadata inside:

- ``aoti``: AOTInductor-compiled C++ (``torch._inductor.aoti_compile_and_package``), the fast
  one for MD; compiling takes minutes.
- ``program``: the ``torch.export`` program itself (``torch.export.save``), interpreted by
  torch at run time: written in seconds and portable, but slower than the eager model. For
  checking an export, and for tools that read ExportedPrograms.

Either runs without eqna's model classes: torch alone loads and calls it (its inputs are the
graph tensors named in the metadata, in that order).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import torch

from eqna.data import keys
from eqna.data.graph import GraphSpec
from eqna.export.trace import MIN_ATOMS, MIN_EDGES, trace_potential
from eqna.models.interface import AtomisticModel

FORMAT = "eqna-exported"
FORMAT_VERSION = 1
KINDS = ("aoti", "program")
METADATA = "eqna.json"  # extra file of a program; metadata key of an AOTInductor package


def export_model(
    model: AtomisticModel,
    path: str | os.PathLike,
    kind: str = "aoti",
    atomic_virial: bool = False,
    info: dict | None = None,
) -> dict:
    """Write ``model`` (an eval-mode potential, in the dtype to export) to ``path`` (.pt2).

    Args:
        kind: ``"aoti"`` or ``"program"`` (module docstring).
        atomic_virial: also compute the per-atom virial (for LAMMPS ``compute stress/atom``).
        info: the model file's metadata (family, hparams, versions) to keep as ``source``.

    Returns:
        the metadata written.

    Raises:
        UnsupportedForExport: the model cannot be exported (:func:`check_exportable`).
        ValueError: an unknown kind, a path not ending in .pt2, or a model not on the CPU.
    """
    if kind not in KINDS:
        raise ValueError(f"export kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"{path}: an exported model file ends in .pt2")
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"export runs on the CPU only so far (the model is on {device})")
    program, inputs, outputs = trace_potential(model, atomic_virial)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "inputs": inputs,
        "outputs": list(outputs),
        "elements": model.elements,
        "r_max": model.r_max,
        "max_num_neighbors": model.max_num_neighbors,
        "dtype": str(model.dtype).replace("torch.", ""),
        "device": "cpu",
        "atomic_virial_unavailable": None
        if atomic_virial
        else "it was exported without the per-atom virial (eqna.export --atomic-virial)",
        "min_atoms": MIN_ATOMS,
        "min_edges": MIN_EDGES,
        "source": _jsonable(info or {}),
        "torch": str(torch.__version__),
    }
    text = json.dumps(meta)
    partial = path.with_name(path.stem + ".partial.pt2")  # never a half-written model file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "program":
            torch.export.save(program, partial, extra_files={METADATA: text})
        else:
            torch._inductor.aoti_compile_and_package(
                program,
                package_path=str(partial),
                inductor_configs={"aot_inductor.metadata": {METADATA: text}},
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # a failed compile leaves nothing behind
    return meta


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def is_exported_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a .pt2 file (written by :func:`export_model` or not)."""
    path = Path(path)
    return path.suffix == ".pt2" and path.is_file()


def _load(path: Path):
    """(runner, metadata) of an exported file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path}: not a readable .pt2 file ({err})") from err
    if any("/aotinductor/" in name for name in names):
        runner = torch._inductor.aoti_load_package(str(path))
        text = runner.get_metadata().get(METADATA)
    else:
        extra = {METADATA: ""}
        runner = torch.export.load(path, extra_files=extra).module()
        text = extra[METADATA] or None
    if not text:
        raise ValueError(f"{path}: a .pt2 file without eqna metadata (not written by eqna.export)")
    meta = json.loads(text)
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: not an eqna export this version reads ({meta.get('format')})")
    return runner, meta


class ExportedModel:
    """An exported potential behind :class:`AtomisticModel`'s inference interface:
    ``model(graph, compute_stress, compute_atomic_virial) -> predictions``, ``graph_spec``,
    ``dtype``, ``r_max``, ``elements``, so the calculator, MD and LAMMPS take it as they take
    a model.pt.

    Args:
        path: the .pt2 file.
        device: only ``"cpu"`` so far (what it was compiled for).
        dtype: None, or the dtype it was exported in (compiled code is not recast).
    """

    is_potential = True
    output = "energy"
    predicts = (keys.ENERGY, keys.ATOMIC_ENERGIES, keys.FORCES, keys.STRESS, keys.VIRIAL)

    def __init__(self, path: str | os.PathLike, device="cpu", dtype: torch.dtype | None = None):
        self.path = Path(path)
        self.runner, self.info = _load(self.path)
        self.dtype = getattr(torch, self.info["dtype"])
        if dtype is not None and dtype != self.dtype:
            raise ValueError(
                f"{self.path}: exported in {self.info['dtype']}; it runs in that dtype only "
                f"(asked for {str(dtype).replace('torch.', '')}; export again with --dtype)"
            )
        if torch.device(device).type != self.info["device"]:
            raise ValueError(f"{self.path}: exported for {self.info['device']}, not {device}")
        self.r_max = float(self.info["r_max"])
        self.elements = [int(z) for z in self.info["elements"]]
        self.max_num_neighbors = self.info["max_num_neighbors"]
        self.graph_spec = GraphSpec(self.r_max, self.elements, self.max_num_neighbors)
        self.atomic_virial_unavailable = self.info["atomic_virial_unavailable"]

    def __call__(
        self,
        data: dict[str, torch.Tensor],
        compute_stress: bool = True,
        compute_atomic_virial: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Energy, per-atom energies, forces, virial and stress (always; zero stress for a
        structure that is not periodic) of a one-structure graph."""
        if compute_atomic_virial and self.atomic_virial_unavailable:
            raise ValueError(f"{self.path}: no per-atom virial: {self.atomic_virial_unavailable}")
        atoms, edges = data[keys.POSITIONS].shape[0], data[keys.EDGE_INDEX].shape[1]
        graphs = data[keys.NUM_ATOMS].shape[0]
        least_atoms, least_edges = self.info["min_atoms"], self.info["min_edges"]
        if atoms < least_atoms or edges < least_edges or graphs != 1:
            raise ValueError(
                f"{self.path}: an exported model takes one structure with at least "
                f"{least_atoms} atoms and {least_edges} edges within r_max; this input has "
                f"{graphs} structure(s), {atoms} atoms, {edges} edges (use the model.pt)"
            )
        outputs = self.runner(*(data[key] for key in self.info["inputs"]))
        return dict(zip(self.info["outputs"], outputs))
