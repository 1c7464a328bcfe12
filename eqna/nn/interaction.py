"""Interaction block: radial-weighted tensor-product convolution, many-body product and a gate."""

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn

from eqna.nn.geometry import scatter_sum
from eqna.nn.product import SymmetricProduct


def _uvu_instructions(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps):
    """Channel-wise ('uvu') paths whose output irrep is one of ``irreps_target``'s."""
    irreps_mid, instructions = [], []
    targets = {ir for _, ir in irreps_target}
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in targets:
                    instructions.append((i, j, len(irreps_mid), "uvu", True))
                    irreps_mid.append((mul, ir_out))
    irreps_mid = o3.Irreps(irreps_mid)
    irreps_sorted, permutation, _ = irreps_mid.sort()
    instructions = [(i, j, permutation[k], mode, w) for i, j, k, mode, w in instructions]
    return irreps_sorted, instructions


def build_gate(irreps_out: o3.Irreps) -> e3nn_nn.Gate:
    """Gate whose output is ``irreps_out``: SiLU on scalars, sigmoid gates on l > 0."""
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps([(mul, "0e") for mul, _ in gated])
    return e3nn_nn.Gate(
        scalars,
        [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars],
        gates,
        [torch.sigmoid] * len(gates),
        gated,
    )


def radial_mlp(sizes: list[int]) -> e3nn_nn.FullyConnectedNet:
    """Edge embedding [e, num_basis] -> tensor-product weights [e, weight_numel].

    e3nn's variance-preserving MLP: the weights reach the tensor product with unit second
    moment, so the signal neither vanishes nor explodes through the blocks at initialisation.
    """
    return e3nn_nn.FullyConnectedNet(sizes, torch.nn.functional.silu)


def basis_irreps(num_channels: int, l_max: int, parities: int = 1) -> o3.Irreps:
    """num_channels copies of each l <= l_max with the parity of spherical harmonics
    (``parities`` 2: also with the other parity, e.g. 0o and 1e for pseudoscalars and axial
    vectors)."""
    irreps = []
    for ell in range(l_max + 1):
        natural = (-1) ** ell
        irreps.append((num_channels, (ell, natural)))
        if parities == 2:
            irreps.append((num_channels, (ell, -natural)))
    return o3.Irreps(irreps)


class Interaction(nn.Module):
    """h_i <- Gate(W B(A_i, z_i) + SelfInt(h_i, z_i)), A_i = W_down sum_j TP(W_up h_j, Y(r_ij);
    R(r_ij)) / avg_n.

    With ``correlation`` 1, B is the identity and W_down maps straight to the gate (NequIP's
    2-body block). With correlation nu > 1, A_i is the atomic basis, ``num_channels`` copies of
    every irrep up to the edges' l (``irreps_sh``), and B its channel-wise symmetric powers up
    to nu with per-element weights (:class:`eqna.nn.product.SymmetricProduct`, MACE's body
    order), mapped to the gate by W.

    Args:
        irreps_in: node feature irreps entering the block.
        irreps_out: node feature irreps leaving it (the gate's output).
        irreps_sh: spherical-harmonic irreps of the edges.
        num_elements: width of the one-hot chemistry used by the self-interaction.
        num_basis: width of the radial edge embedding.
        radial_hidden: hidden sizes of the radial MLP.
        avg_num_neighbors: normaliser of the neighbour sum.
        self_connection: add the self-interaction. The first block has none, so an atom
            without neighbours gets zero features and exactly its reference energy E0.
        correlation: highest power of the atomic basis (1: a 2-body block).
        parities: 2: the atomic basis of a many-body block has both parities of every l.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        num_elements: int,
        num_basis: int,
        radial_hidden: list[int],
        avg_num_neighbors: float,
        self_connection: bool = True,
        correlation: int = 1,
        parities: int = 1,
    ):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.gate = build_gate(self.irreps_out)
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)
        self.product = None
        irreps_target = self.irreps_out
        if correlation > 1:
            channels = {mul for mul, _ in self.irreps_out}
            if len(channels) != 1:
                raise ValueError("a many-body block needs one channel count for all irreps")
            l_top = max(ir.l for _, ir in o3.Irreps(irreps_sh))
            irreps_target = basis_irreps(channels.pop(), l_top, parities)
        irreps_mid, instructions = _uvu_instructions(self.irreps_in, irreps_sh, irreps_target)
        self.tp = o3.TensorProduct(
            self.irreps_in,
            irreps_sh,
            irreps_mid,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = radial_mlp([num_basis, *radial_hidden, self.tp.weight_numel])
        if correlation > 1:
            self.linear_down = o3.Linear(irreps_mid, irreps_target)
            self.product = SymmetricProduct(
                irreps_target, self.irreps_out, correlation, num_elements
            )
            self.linear_product = o3.Linear(self.irreps_out, self.gate.irreps_in)
        else:
            self.linear_down = o3.Linear(irreps_mid, self.gate.irreps_in)
        self.self_interaction = (
            o3.FullyConnectedTensorProduct(
                self.irreps_in, o3.Irreps(f"{num_elements}x0e"), self.gate.irreps_in
            )
            if self_connection
            else None
        )

    def forward(
        self,
        h: torch.Tensor,  # [n, irreps_in]
        node_attrs: torch.Tensor,  # [n, num_elements] one-hot
        edge_index: torch.Tensor,  # [2, e]
        edge_sh: torch.Tensor,  # [e, irreps_sh]
        edge_embedding: torch.Tensor,  # [e, num_basis]
    ) -> torch.Tensor:  # [n, irreps_out]
        centre, neighbour = edge_index
        skip = self.self_interaction(h, node_attrs) if self.self_interaction is not None else 0.0
        h = self.linear_up(h)
        messages = self.tp(h[neighbour], edge_sh, self.radial(edge_embedding))  # [e, mid]
        a = self.linear_down(scatter_sum(messages, centre, h.shape[0]) / self.avg_num_neighbors)
        if self.product is not None:
            a = self.linear_product(self.product(a, node_attrs))
        return self.gate(a + skip)
