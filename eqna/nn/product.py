"""Many-body features: channel-wise symmetric tensor powers of the atomic basis A_i (ACE / MACE).

B_i = sum_{nu=1..correlation} sum_p W_nu,p[z_i, c] (A_i^{(x) nu})_{p, c}, where p runs over the
Clebsch-Gordan coupling paths of the nu-fold product of channel c of A_i with itself. Products
are built one order at a time from e3nn tensor products, (A^{(x) nu} coupled to L') (x) A -> L,
so a feature of order nu is a degree-nu polynomial of A_i: an interaction block with
correlation nu builds (nu + 1)-body features in every layer. Every path is exactly O(3)
equivariant, and B = 0 when A = 0 (no bias), so an isolated atom keeps its reference energy.
"""

import math

import torch
from e3nn import o3
from torch import nn


def _uuu_paths(irreps1: o3.Irreps, irreps2: o3.Irreps, allowed, same_input: bool):
    """Channel-wise ('uuu') coupling paths irreps1 (x) irreps2 -> an irrep in ``allowed``.

    With ``same_input`` (A (x) A) a pair (j, i) repeats (i, j), and (l, l) -> L with 2l + L odd
    is antisymmetric, so it vanishes for identical inputs (the cross product of a vector with
    itself): both are left out. Returns the output irreps, sorted so that each irrep's paths
    are contiguous, and e3nn instructions in that order.
    """
    paths = []
    for i, (mul1, ir1) in enumerate(irreps1):
        for j, (_, ir2) in enumerate(irreps2):
            if same_input and j < i:
                continue
            for ir_out in ir1 * ir2:
                if ir_out not in allowed:
                    continue
                if same_input and i == j and (ir1.l + ir2.l + ir_out.l) % 2 == 1:
                    continue
                paths.append((ir_out, i, j, mul1))
    paths.sort(key=lambda path: (path[0].l, path[0].p))
    irreps_out = o3.Irreps([(mul, ir) for ir, _, _, mul in paths])
    instructions = [(i, j, k, "uuu", False) for k, (_, i, j, _) in enumerate(paths)]
    return irreps_out, instructions


class SymmetricProduct(nn.Module):
    """A_i [n, irreps_in] -> B_i [n, irreps_out], polynomials of degree 1..correlation in A_i.

    Args:
        irreps_in: the atomic basis, ``mul`` channels of every irrep (e.g. 64x0e+64x1o+64x2e).
        irreps_out: the features kept, ``mul`` channels each; every irrep must appear in the
            products (e.g. 64x0e+64x1o).
        correlation: highest power of A_i (1: a per-element linear map of A_i).
        num_elements: width of the one-hot chemistry that selects the weights.
    """

    def __init__(
        self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, correlation: int, num_elements: int
    ):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        muls = {mul for mul, _ in self.irreps_in + self.irreps_out}
        if len(muls) != 1:
            raise ValueError(f"SymmetricProduct needs one multiplicity, got {sorted(muls)}")
        if correlation < 1:
            raise ValueError(f"correlation must be >= 1, got {correlation}")
        self.mul = muls.pop()
        self.correlation = int(correlation)
        targets = [ir for _, ir in self.irreps_out]
        l_top = max(ir.l for _, ir in self.irreps_in)
        intermediate = {o3.Irrep(ell, p) for ell in range(l_top + 1) for p in (1, -1)}
        self.products = nn.ModuleList()
        irreps = self.irreps_in
        path_irreps = [self.irreps_in]  # the irreps of the features of each order
        for order in range(2, self.correlation + 1):
            allowed = set(targets) if order == self.correlation else intermediate | set(targets)
            irreps_next, instructions = _uuu_paths(irreps, self.irreps_in, allowed, order == 2)
            self.products.append(
                o3.TensorProduct(irreps, self.irreps_in, irreps_next, instructions)
            )
            path_irreps.append(irreps_next)
            irreps = irreps_next
        # slices of each order's features that are a target irrep: (order, target, start, count)
        self._slices = []
        for order, order_irreps in enumerate(path_irreps):
            for t, target in enumerate(targets):
                starts = [
                    s.start
                    for (_, ir), s in zip(order_irreps, order_irreps.slices())
                    if ir == target
                ]
                if starts:
                    self._slices.append((order, t, starts[0], len(starts)))
        counts = [sum(c for _, t, _, c in self._slices if t == k) for k in range(len(targets))]
        missing = [str(ir) for ir, count in zip(targets, counts) if count == 0]
        if missing:
            raise ValueError(f"no product of {self.irreps_in} gives {' '.join(missing)}")
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(num_elements, count, self.mul) / math.sqrt(count))
            for count in counts
        )

    def forward(
        self,
        a: torch.Tensor,  # [n, irreps_in]
        node_attrs: torch.Tensor,  # [n, num_elements] one-hot
    ) -> torch.Tensor:  # [n, irreps_out]
        features = [a]  # [n, irreps of order nu]
        for product in self.products:
            features.append(product(features[-1], a))
        out = []
        for t, (_, ir) in enumerate(self.irreps_out):
            dim = self.mul * ir.dim
            pieces = [  # [n, paths, mul, 2l + 1] of every order
                features[order].narrow(1, start, count * dim).reshape(-1, count, self.mul, ir.dim)
                for order, target, start, count in self._slices
                if target == t
            ]
            paths = torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
            weight = torch.einsum("ne,epc->npc", node_attrs, self.weights[t])  # [n, paths, mul]
            out.append((paths * weight.unsqueeze(-1)).sum(dim=1).reshape(-1, dim))
        return torch.cat(out, dim=1)
