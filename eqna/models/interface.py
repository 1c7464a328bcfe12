"""The one model interface every consumer sees: training, evaluation, calculator, MD, export.

A network (``EquivariantNetwork``, ``CrystalGraphNetwork``) maps a graph dict to energies or a
per-structure property and declares ``output``, ``r_max``, ``elements`` and
``max_num_neighbors``. :class:`AtomisticModel` wraps it once, adds forces and stress by
autograd for potentials, and states what the model needs (:attr:`graph_spec`) and what it
predicts (:attr:`predicts`), so no caller inspects the network.
"""

import torch
from torch import nn

from eqna.data import keys
from eqna.data.class_labels import OUTPUTS as CLASSIFIER_OUTPUTS
from eqna.data.graph import GraphSpec
from eqna.nn.physics import energy_derivatives
from eqna.nn.reciprocal import ReciprocalFeatures

OUTPUTS = ("energy", "property", *CLASSIFIER_OUTPUTS)
PREDICTS = {
    "energy": (keys.ENERGY, keys.ATOMIC_ENERGIES, keys.FORCES, keys.STRESS, keys.VIRIAL),
    "property": (keys.PROPERTY,),
    "classification": (keys.LOGITS, keys.PROBABILITIES),
    "multilabel": (keys.LOGITS, keys.PROBABILITIES),
}


class AtomisticModel(nn.Module):
    """A network with its physics: ``model(batch, compute_stress=...) -> predictions``.

    Args:
        network: maps a graph dict to ``energy`` [g] + ``atomic_energies`` [n]
            (``network.output == "energy"``), to ``property`` [g, t] (``"property"``) or to
            class ``logits`` [g, C] (``"classification"``, ``"multilabel"``; the model adds
            their ``probabilities``).

    Attributes:
        output: ``"energy"`` (an interatomic potential), ``"property"``,
            ``"classification"`` or ``"multilabel"``.
        r_max: neighbour cutoff, Å.
        elements: atomic numbers the model knows, in its type order.
        max_num_neighbors: the k-nearest neighbour rule of the network (None: all in r_max).
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        if network.output not in OUTPUTS:
            raise ValueError(f"network output {network.output!r} is not one of {OUTPUTS}")
        self.network = network

    @property
    def output(self) -> str:
        return self.network.output

    @property
    def is_potential(self) -> bool:
        """Predicts energies (and forces, stress), so it can drive MD."""
        return self.output == "energy"

    @property
    def is_classifier(self) -> bool:
        """Predicts classes (``classification``) or labels (``multilabel``)."""
        return self.output in CLASSIFIER_OUTPUTS

    @property
    def classes(self) -> list[str]:
        """A classifier's class (label) names in output order; [] for other models."""
        return list(getattr(self.network, "classes", None) or [])

    @property
    def predicts(self) -> tuple[str, ...]:
        """Keys of the prediction dict (:mod:`eqna.data.keys`)."""
        return PREDICTS[self.output]

    @property
    def r_max(self) -> float:
        return float(self.network.r_max)

    @property
    def elements(self) -> list[int]:
        return [int(z) for z in self.network.elements]

    @property
    def max_num_neighbors(self) -> int | None:
        return self.network.max_num_neighbors

    @property
    def graph_spec(self) -> GraphSpec:
        """How to build this model's input from atoms (:func:`eqna.data.graph.atoms_to_graph`)."""
        return GraphSpec(self.r_max, self.elements, self.max_num_neighbors)

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    def forward(
        self,
        data: dict[str, torch.Tensor],
        compute_stress: bool = True,
        compute_atomic_virial: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predictions for a batch; potentials add forces, (``compute_stress``) virial and
        stress and (``compute_atomic_virial``) the per-atom virial."""
        if self.is_classifier:
            out = self.network(data)
            logits = out[keys.LOGITS]
            if self.output == "classification":
                out[keys.PROBABILITIES] = torch.softmax(logits, dim=-1)
            else:
                out[keys.PROBABILITIES] = torch.sigmoid(logits)
            return out
        if not self.is_potential:
            return self.network(data)
        return energy_derivatives(
            self.network, data, compute_stress, self.training, compute_atomic_virial
        )

    @property
    def atomic_virial_is_complete(self) -> bool:
        """Whether the per-atom virial sums to the virial: the energy sees positions only
        through edge vectors (not through a reciprocal-space view)."""
        return not any(isinstance(m, ReciprocalFeatures) for m in self.modules())

    @property
    def atomic_virial_unavailable(self) -> str | None:
        """Why ``compute_atomic_virial`` is not offered, or None (the interface an exported
        model shares)."""
        if self.atomic_virial_is_complete:
            return None
        return "this model has a reciprocal-space view: its virial is not a sum over atoms"
