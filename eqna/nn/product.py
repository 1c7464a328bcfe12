"""Many-body features: channel-wise symmetric tensor powers of the atomic basis A_i (ACE / MACE).

B_i,c = sum_{nu=1..correlation} sum_k W_nu,k[z_i, c] P_nu,k(A_i,c), where A_i,c is channel c
of the atomic basis (a vector of D numbers: one block of 2l + 1 per irrep) and P_nu,k runs over
a basis of the O(3)-equivariant maps from degree-nu polynomials of A_i,c to an output irrep.
An interaction block with correlation nu thus builds (nu + 1)-body features in every layer.

The basis is built once, in float64, by our own generalised Clebsch-Gordan contraction
(:func:`coupling_tables`): couple the blocks of A one at a time with e3nn's Wigner 3j symbols,
symmetrise over the nu factors, rewrite on the sorted monomials x_i x_j x_k (i <= j <= k), and
keep a linearly independent set (SVD). The forward pass is then a few gathers, products and
one matrix product per output irrep: cheap in op count, which is what bounds small molecules.
Every basis map is exactly O(3) equivariant, and B = 0 when A = 0 (no constant term), so an
isolated atom keeps its reference energy.
"""

import functools
import itertools
import math

import torch
from e3nn import o3
from torch import nn

_TOLERANCE = 1e-9  # relative singular value below which a coupling is a combination of others


def _block_embeddings(irreps: list[o3.Irrep]) -> list[torch.Tensor]:
    """One [D, 2l + 1] float64 embedding per block of the D-vector made of ``irreps``."""
    dim = sum(ir.dim for ir in irreps)
    out, start = [], 0
    for ir in irreps:
        embedding = torch.zeros(dim, ir.dim, dtype=torch.float64)
        embedding[start : start + ir.dim] = torch.eye(ir.dim, dtype=torch.float64)
        out.append(embedding)
        start += ir.dim
    return out


def _couplings(irreps: list[o3.Irrep], order: int, targets: list[o3.Irrep]):
    """All coupling trees of ``order`` blocks of A to each target: {target: [T [D]*order + [2L+1]]}.

    Blocks are added one at a time (((b1 b2)_l12 b3)_L ...), with b1 <= b2 <= ... by index
    since the trees are symmetrised afterwards; intermediate l is capped at what can still
    reach a target.
    """
    embeddings = _block_embeddings(irreps)
    l_top, l_target = max(ir.l for ir in irreps), max(ir.l for ir in targets)
    trees = [(ir, b, emb) for b, (ir, emb) in enumerate(zip(irreps, embeddings, strict=True))]
    for level in range(2, order + 1):
        l_cap = l_target + (order - level) * l_top
        grown = []
        for ir1, last, tensor in trees:
            for b in range(last, len(irreps)):
                ir2, emb2 = irreps[b], embeddings[b]
                for ir_out in ir1 * ir2:
                    if ir_out.l > l_cap or (level == order and ir_out not in targets):
                        continue
                    w3j = o3.wigner_3j(ir1.l, ir2.l, ir_out.l, dtype=torch.float64)
                    grown.append((ir_out, b, torch.einsum("...a,jb,abc->...jc", tensor, emb2, w3j)))
        trees = grown
    return {t: [tensor for ir, _, tensor in trees if ir == t] for t in targets}


def _monomials(dim: int, order: int) -> list[tuple[int, ...]]:
    """Sorted index tuples i1 <= ... <= i_order of degree-``order`` monomials in D variables,
    in colex order (by the last index first): the monomials of order nu - 1 whose last index is
    <= k are then a prefix, and order nu is built from slices, without gathers."""
    monomials = itertools.combinations_with_replacement(range(dim), order)
    return sorted(monomials, key=lambda m: m[::-1])


def coupling_tables(irreps: list[o3.Irrep], order: int, targets: list[o3.Irrep]):
    """{target: U [M, K, 2L+1]}: K independent equivariant maps from the M monomials of degree
    ``order`` of a D-vector made of ``irreps`` (float64; K = 0 when none exists)."""
    key = (tuple(str(ir) for ir in irreps), order, tuple(str(ir) for ir in targets))
    return {t: table.clone() for t, table in _cached_tables(*key).items()}


@functools.lru_cache(maxsize=64)
def _cached_tables(irreps: tuple[str, ...], order: int, targets: tuple[str, ...]):
    """The tables of :func:`coupling_tables`, once per process (seconds for l = 3, order 3)."""
    irreps, targets = [o3.Irrep(ir) for ir in irreps], [o3.Irrep(ir) for ir in targets]
    dim = sum(ir.dim for ir in irreps)
    monomials = _monomials(dim, order)
    index = tuple(torch.tensor(axis) for axis in zip(*monomials, strict=True))
    multiplicity = torch.tensor(
        [math.factorial(order) / math.prod(math.factorial(m.count(i)) for i in set(m))
         for m in monomials], dtype=torch.float64)  # fmt: skip
    tables = {}
    for target, trees in _couplings(irreps, order, targets).items():
        rows = []
        for tree in trees:
            symmetric = sum(tree.permute(*p, order) for p in itertools.permutations(range(order)))
            rows.append((symmetric[index] * multiplicity.unsqueeze(-1)).flatten())  # [M*(2L+1)]
        if not rows:
            tables[target] = torch.zeros(len(monomials), 0, target.dim, dtype=torch.float64)
            continue
        _, singular, vh = torch.linalg.svd(torch.stack(rows), full_matrices=False)
        rank = int((singular > _TOLERANCE * singular[0]).sum()) if singular[0] > 0 else 0
        tables[target] = vh[:rank].reshape(rank, len(monomials), target.dim).transpose(0, 1)
    return tables


class SymmetricProduct(nn.Module):
    """A_i [n, irreps_in] -> B_i [n, irreps_out], polynomials of degree 1..correlation in A_i.

    Args:
        irreps_in: the atomic basis, ``mul`` channels of every irrep (e.g. 64x0e+64x1o+64x2e).
        irreps_out: the features kept, ``mul`` channels each; every irrep must be reachable.
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
        self.mul, self.correlation = muls.pop(), int(correlation)
        blocks = [ir for _, ir in self.irreps_in]
        targets = [ir for _, ir in self.irreps_out]
        self.dim = sum(ir.dim for ir in blocks)
        self._exact = {}  # float64 originals of the tables (see refresh_exact)
        # order nu, last index k = (order nu - 1, last index <= k: a prefix) times x_k
        self._prefix = {
            order: [math.comb(k + order - 1, order - 1) for k in range(self.dim)]
            for order in range(2, self.correlation + 1)
        }
        # one table per target, [M of all orders, K of all orders, 2L+1] block-diagonal by
        # order, and the order of each of its K columns
        self.column_orders = []
        for t, target in enumerate(targets):
            pieces, column_orders = [], []
            for order in range(1, self.correlation + 1):
                table = coupling_tables(blocks, order, [target])[target]  # [M, K, 2L+1]
                pieces.append(table)
                column_orders += [order] * table.shape[1]
            if not column_orders:
                raise ValueError(f"no product of {self.irreps_in} gives {target}")
            width = sum(p.shape[1] for p in pieces)
            full = torch.zeros(
                sum(p.shape[0] for p in pieces), width, target.dim, dtype=torch.float64
            )
            row = col = 0
            for p in pieces:
                full[row : row + p.shape[0], col : col + p.shape[1]] = p
                row, col = row + p.shape[0], col + p.shape[1]
            self._exact[f"table_{t}"] = full
            self.register_buffer(f"table_{t}", full.to(torch.get_default_dtype()), persistent=False)
            self.column_orders.append(torch.tensor(column_orders))
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(num_elements, len(c), self.mul) / math.sqrt(len(c)))
            for c in self.column_orders
        )

    @torch.no_grad()
    def refresh_exact(self) -> None:
        """Coupling tables from their float64 originals, in the buffers' dtype and device."""
        for name, exact in self._exact.items():
            buffer = getattr(self, name)
            setattr(self, name, exact.to(buffer.device, buffer.dtype))

    def _channels(self, a: torch.Tensor) -> torch.Tensor:  # [n, irreps_in] -> [n, mul, D]
        blocks = [a[:, s].reshape(-1, self.mul, ir.dim) for (_, ir), s in
                  zip(self.irreps_in, self.irreps_in.slices(), strict=True)]  # fmt: skip
        return torch.cat(blocks, dim=-1) if len(blocks) > 1 else blocks[0]

    def forward(
        self,
        a: torch.Tensor,  # [n, irreps_in]
        node_attrs: torch.Tensor,  # [n, num_elements] one-hot
    ) -> torch.Tensor:  # [n, irreps_out]
        x = self._channels(a)  # [n, mul, D]
        monomials = [x]  # [n, mul, M_nu] per order
        for order in range(2, self.correlation + 1):
            previous = monomials[-1]
            pieces = [previous[..., :count] * x[..., k : k + 1]
                      for k, count in enumerate(self._prefix[order])]  # fmt: skip
            monomials.append(torch.cat(pieces, dim=-1))
        features = torch.cat(monomials, dim=-1) if len(monomials) > 1 else x  # [n, mul, M]
        features = features.transpose(0, 1)  # [mul, n, M]
        num_nodes, num_elements = x.shape[0], node_attrs.shape[1]
        # weights first: one [M, 2L+1] map per element and channel (all targets side by side),
        # so the cost per atom is independent of the number of coupling paths K
        maps = torch.cat([torch.einsum("ekc,Mkm->cMem", weights, getattr(self, f"table_{t}"))
                          .reshape(self.mul, features.shape[-1], -1)
                          for t, weights in enumerate(self.weights)], dim=-1)  # fmt: skip
        per_element = torch.bmm(features, maps)  # [mul, n, E * sum(2L+1)]
        out, start = [], 0
        for _, ir in self.irreps_out:
            width = num_elements * ir.dim
            piece = per_element[..., start : start + width].reshape(self.mul, num_nodes, -1, ir.dim)
            b = (piece * node_attrs.unsqueeze(-1)).sum(dim=2)  # [mul, n, 2L+1]
            out.append(b.transpose(0, 1).reshape(num_nodes, -1))
            start += width
        return torch.cat(out, dim=1)
