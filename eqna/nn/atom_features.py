"""Atom-feature initialisers: element -> feature vector, switchable by ``atom_features`` in configs.

``properties``: CGCNN-style element-property vector (group, period, block, electronegativity,
covalent radius, ionisation energy, electron affinity, valence electrons, volume, ...) from the
table shipped in ``eqna/data/embedded`` (see :mod:`eqna.data.elements`); ``onehot``: one-hot of
the element; ``learned``: a trainable embedding; ``skipatom``: SkipAtom vectors learned from a
data set by ``eqna-skipatom`` (see :mod:`eqna.data.skipatom`).
"""

from collections.abc import Sequence

import torch
from torch import nn

ATOM_FEATURES = ("properties", "onehot", "learned", "skipatom")


def atom_feature_table(
    kind: str, elements: Sequence[int], file: str | None = None, learned_dim: int = 64
) -> torch.Tensor | None:
    """The fixed initial table [num_elements, d] of ``kind`` (None for ``learned``).

    Raises:
        ValueError: unknown kind, ``skipatom`` without a file, or an element the table or file
            has no data for (the message names the element and the file).
    """
    if kind == "properties":
        from eqna.data.elements import element_property_table

        table, _ = element_property_table(list(elements))
        return torch.as_tensor(table, dtype=torch.float64)
    if kind == "onehot":
        return torch.eye(len(elements), dtype=torch.float64)
    if kind == "skipatom":
        if not file:
            raise ValueError(
                "model.atom_features_file: atom_features 'skipatom' needs the JSON "
                "file written by `eqna-skipatom DATA -o emb.json`"
            )
        from eqna.data.skipatom import load_skipatom

        return torch.as_tensor(load_skipatom(file, list(elements)), dtype=torch.float64)
    if kind == "learned":
        return None
    raise ValueError(f"model.atom_features: unknown kind {kind!r}; choose from {ATOM_FEATURES}")


class AtomFeatures(nn.Module):
    """Node types [n] -> initial atom features [n, out_dim]: a table lookup, then a linear map.

    Args:
        kind: one of :data:`ATOM_FEATURES`.
        num_elements: size of the model's element list.
        out_dim: width of the features handed to the message passing.
        table: [num_elements, d] initial vectors (None for ``learned``: ``out_dim`` random ones).
        trainable: whether the table is fine-tuned (``learned`` always is).
    """

    def __init__(
        self,
        kind: str,
        num_elements: int,
        out_dim: int,
        table: torch.Tensor | None,
        trainable: bool = False,
    ):
        super().__init__()
        self.kind = kind
        if table is None:
            self.table = nn.Embedding(num_elements, out_dim)
            nn.init.normal_(self.table.weight)
        else:
            if table.shape[0] != num_elements:
                raise ValueError(
                    f"atom feature table has {table.shape[0]} rows, "
                    f"the model knows {num_elements} elements"
                )
            table = table.to(torch.get_default_dtype())
            self.table = nn.Embedding.from_pretrained(table, freeze=not trainable)
        self.linear = nn.Linear(self.table.embedding_dim, out_dim)

    def forward(self, node_types: torch.Tensor) -> torch.Tensor:  # [n] -> [n, out_dim]
        return self.linear(self.table(node_types))
