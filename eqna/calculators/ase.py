"""ASE calculator for eqna models, with a Verlet (skin) neighbour list reused between steps.

Example::

    from eqna.calculators import EqnaCalculator
    atoms.calc = EqnaCalculator("path/to/model.pt")  # or a zoo name, or an AtomisticModel
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.data.neighbours import neighbour_graph
from eqna.data.validation import GeometryLimits, check_before_search, check_distances
from eqna.export.exported import ExportedModel, is_exported_file
from eqna.models.committee import resolve_committee
from eqna.models.interface import AtomisticModel
from eqna.models.io import load_model, set_requires_grad
from eqna.models.zoo import resolve_model_path

__all__ = ["EqnaCalculator", "VerletNeighbourList", "prepare_model"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """float32 or float64 (by name or torch dtype); half precision is refused: forces and
    energies of interatomic potentials lose whole eV in it."""
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64 (or the torch dtype), got {dtype!r}")
    return DTYPES[name]


def prepare_model(model, device, dtype) -> tuple[AtomisticModel | ExportedModel, dict]:
    """Load or copy ``model``, cast it, put it in eval mode and freeze its parameters (an
    exported .pt2 is loaded as it is)."""
    dtype = _as_dtype(dtype)
    if isinstance(model, AtomisticModel):
        # A copy: freezing and casting must not touch a module the caller may still train.
        module, info = copy.deepcopy(model), {"source": "module"}
        module.to(dtype=dtype or module.dtype)
        where = "the model passed in"
    elif isinstance(model, ExportedModel):
        if dtype is not None and dtype != model.dtype:
            raise ValueError(f"{model.path}: exported in {model.info['dtype']}, not {dtype}")
        return model, {**model.info, "source": str(model.path)}
    elif isinstance(model, torch.nn.Module):
        raise TypeError("pass an eqna.models.AtomisticModel (eqna.models.build_model builds one)")
    else:
        path = resolve_model_path(model)
        if is_exported_file(path):  # compiled code: nothing to cast or freeze
            module = ExportedModel(path, device, dtype)
            return module, {**module.info, "source": str(path)}
        module, info = load_model(path, device, dtype)
        info["source"] = where = str(path)
    if not module.is_potential:
        raise TypeError(
            f"{where}: a {info.get('family', type(module.network).__name__)} {module.output} "
            "model predicts one value per structure, not "
            "energies; use `eqna-evaluate` for it"
        )
    set_requires_grad(module, False)  # only positions and strain need gradients
    return module.to(device).eval(), info


class VerletNeighbourList:
    """Edges within ``cutoff + skin``, reused while no atom has moved more than ``skin / 2``.

    Moves are measured relative to the mean displacement of all atoms. Any pair closer than
    ``cutoff`` now was then closer than ``cutoff + skin`` at the last build, so the cached list
    is complete. It is rebuilt when the cell, pbc or atomic numbers change (a
    cell filter or barostat therefore rebuilds every step).

    Args:
        cutoff: interaction radius of the model, Å.
        skin: extra radius, Å; 0 rebuilds whenever the atoms move relative to each other.
    """

    def __init__(self, cutoff: float, skin: float):
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        self.cutoff, self.skin = float(cutoff), float(skin)
        self.num_builds = 0
        self._ref: tuple[np.ndarray, ...] | None = None
        self._edge_index = self._shifts = None

    def needs_rebuild(self, atoms: Atoms) -> bool:
        """True unless the cached list is still valid for ``atoms``."""
        if self._ref is None:
            return True
        positions, cell, pbc, numbers = self._ref
        if len(numbers) != len(atoms) or not np.array_equal(numbers, atoms.numbers):
            return True
        if not (np.array_equal(cell, atoms.cell.array) and np.array_equal(pbc, atoms.pbc)):
            return True
        if len(positions) == 0:
            return False
        # Pair vectors only see relative motion, so a common drift (a molecule translating in
        # NVE) is subtracted: fewer rebuilds, same guarantee.
        displacement = atoms.positions - positions
        displacement -= displacement.mean(axis=0)
        return bool((displacement**2).sum(axis=1).max() > (0.5 * self.skin) ** 2)

    def update(self, atoms: Atoms) -> bool:
        """Rebuild the list if needed; returns whether it was rebuilt."""
        if not self.needs_rebuild(atoms):
            return False
        edge_index, shifts = neighbour_graph(
            atoms.positions, atoms.cell.array, atoms.pbc, self.cutoff + self.skin
        )
        self._edge_index, self._shifts = edge_index, shifts.astype(np.float64)
        self._ref = (
            atoms.positions.copy(),
            atoms.cell.array.copy(),
            atoms.pbc.copy(),
            atoms.numbers.copy(),
        )
        self.num_builds += 1
        return True

    def edges(self, positions: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cached edges shorter than ``cutoff`` at ``positions`` [n, 3] and ``cell`` [3, 3].

        Longer edges would contribute exactly zero (the envelope vanishes beyond
        the cutoff) but cost as much as any other, so they are dropped before the model runs.

        Returns:
            edge_index [2, e] int64, cell shifts [e, 3] float64 and edge lengths [e] Å (for
            the distance check, which would otherwise compute them again every step).
        """
        centre, neighbour = self._edge_index
        vectors = positions[neighbour] - positions[centre] + self._shifts @ cell
        squared = (vectors * vectors).sum(axis=1)
        keep = squared < self.cutoff**2
        return self._edge_index[:, keep], self._shifts[keep], np.sqrt(squared[keep])


class EqnaCalculator(Calculator):
    """ASE calculator: energy, forces, per-atom energies and (3D-periodic cells) stress.

    Args:
        model: path to a ``model.pt`` or an exported ``.pt2`` (:mod:`eqna.export`), a zoo
            name (see :func:`resolve_model_path`), an :class:`eqna.export.ExportedModel`, or
            a :class:`eqna.models.AtomisticModel` (copied; the caller's module is left
            untouched);
            or a list of them, or a committee folder (:mod:`eqna.models.committee`; also by
            zoo name): a committee (same elements, cutoff and neighbour cap), whose
            mean is the result and whose spread is in ``results``: ``energy_std`` (eV),
            ``forces_std`` [n] (eV/Å, per atom: the root of the summed variances of its three
            components) and, for periodic cells, ``stress_std`` [6]; standard deviations over
            the members (ddof 0). The members share one graph and neighbour list.
        device: torch device the model runs on.
        dtype: ``None`` keeps the saved (or the module's) dtype; else ``"float32"``,
            ``"float64"`` or a torch dtype.
        skin: Verlet skin of the neighbour list, Å (see :class:`VerletNeighbourList`).
        min_distance: Å; a structure with two atoms closer is refused (ValueError), as are
            non-finite positions, a degenerate periodic cell and an absurd number density
            (:mod:`eqna.data.validation`, the checks training data passes); 0: no distance
            check. Checked at every call on the edges already built: no extra search.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.

    Attributes:
        model: the frozen :class:`eqna.models.AtomisticModel` in eval mode (a committee's
            first member).
        committee: every member, ``[model]`` for a single model.
        info: the model file's metadata (family, hparams, units, versions), or
            ``{"source": "module"}``.
        neighbour_list: the :class:`VerletNeighbourList` (``num_builds`` counts rebuilds).

    Stress is computed whenever the cell is periodic in all three directions, so a cell filter
    asking for forces and then stress costs one model call. Asking for stress of any other
    structure raises ``PropertyNotImplementedError``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        skin: float = 0.5,
        min_distance: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.device = torch.device(device)
        if isinstance(model, (list, tuple)):
            members = list(model)
        else:  # a committee folder (eqna-train --committee, or a zoo committee) or one model
            members = resolve_committee(model) or [model]
        if not members:
            raise ValueError("a committee needs at least one model")
        self.model, self.info = prepare_model(members[0], self.device, dtype)
        self.committee = [self.model] + [
            _member(m, k, self.model, self.device) for k, m in enumerate(members[1:], start=1)
        ]
        self.dtype = self.model.dtype
        self.r_max = self.model.r_max
        self.elements = self.model.elements
        self.neighbour_list = VerletNeighbourList(self.r_max, skin)
        if not min_distance >= 0:
            raise ValueError(f"min_distance must be >= 0, got {min_distance}")
        self.limits = GeometryLimits(min_distance=float(min_distance), prefix="")

    def graph(self, atoms: Atoms) -> dict[str, torch.Tensor]:
        """The model input for ``atoms``: the training input path (:class:`GraphSpec`) fed
        with the reused neighbour list, as a one-graph batch on the calculator's device.

        Raises:
            ValueError: (a :class:`DataError`) the structure fails a geometry check.
        """
        radius = self.neighbour_list.cutoff + self.neighbour_list.skin
        check_before_search(atoms, radius, self.limits, "EqnaCalculator: ")
        self.neighbour_list.update(atoms)
        edge_index, shifts, lengths = self.neighbour_list.edges(atoms.positions, atoms.cell.array)
        where = "EqnaCalculator: "
        check_distances(atoms, edge_index, shifts, self.limits, where, lengths=lengths)
        graph = self.model.graph_spec.graph(atoms, neighbours=(edge_index, shifts))
        return to_device(collate([graph]), self.device, self.dtype)

    def calculate(
        self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes
    ) -> None:
        """Fill ``self.results`` (ASE units: eV, eV/Å, eV/Å^3; stress in Voigt order)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(atoms.pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(
                f"stress needs a cell periodic in all three directions; this structure has "
                f"pbc={atoms.pbc.tolist()}"
            )
        graph = self.graph(atoms)
        runs = [_numpy(model(graph, compute_stress=periodic), periodic) for model in self.committee]
        mean = {key: np.mean([run[key] for run in runs], axis=0) for key in runs[0]}
        energy = float(mean["energy"])
        self.results = {"energy": energy, "free_energy": energy, "forces": mean["forces"],
                        "energies": mean["energies"]}  # fmt: skip
        if periodic:
            self.results["stress"] = mean["stress"]
        if len(runs) > 1:
            spread = {key: np.std([run[key] for run in runs], axis=0) for key in runs[0]}
            self.results["energy_std"] = float(spread["energy"])
            self.results["forces_std"] = np.sqrt((spread["forces"] ** 2).sum(axis=1))
            if periodic:
                self.results["stress_std"] = spread["stress"]


def _member(model, k: int, first: AtomisticModel, device) -> AtomisticModel:
    """Committee member ``k``, in the first member's dtype; it must read the same graphs."""
    member, _ = prepare_model(model, device, first.dtype)
    if member.graph_spec != first.graph_spec:
        raise ValueError(
            f"committee member {k} ({model if isinstance(model, str) else 'module'}) reads other "
            f"graphs than member 0: {member.graph_spec} vs {first.graph_spec} (a committee "
            "shares elements, cutoff and neighbour cap)"
        )
    return member


def _numpy(out: dict, periodic: bool) -> dict[str, np.ndarray]:
    """One model's energy, forces, per-atom energies and (periodic) Voigt stress."""
    result = {
        "energy": out[keys.ENERGY].detach().sum().cpu().double().numpy(),
        "forces": out[keys.FORCES].detach().cpu().double().numpy(),
        "energies": out[keys.ATOMIC_ENERGIES].detach().cpu().double().numpy(),
    }
    if periodic:
        stress = out[keys.STRESS][0].detach().cpu().double().numpy()
        result["stress"] = full_3x3_to_voigt_6_stress(stress)
    return result
