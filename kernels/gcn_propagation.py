"""GCN propagation ``Â X`` with ``Â = D^-1/2 (A + I) D^-1/2`` (Kipf & Welling, ICLR 2017, eq. 2).

Convention (PyTorch Geometric's ``GCNConv`` / ``gcn_norm``, flow ``source_to_target``):
``edge_index`` (2, E) holds row 0 = source j and row 1 = target i; messages flow j -> i and are
summed at the target. In per-node form, with self-loops added:

    out_i = sum_{(j -> i)} w_ji / sqrt(deg_j * deg_i) * x_j,     deg_i = sum_{(j -> i)} w_ji

i.e. ``A[i, j] = sum of the weights of the edges j -> i`` (duplicate edges add up), the degree is
taken at the target and includes the self-loop, and a node of degree 0 gets ``deg^-1/2 = 0``.
Self-loops follow ``torch_geometric.utils.add_remaining_self_loops`` with fill value 1: a node
without a self-loop gets one of weight 1; a node that has one keeps exactly one, with that
loop's weight (weight 1 when ``edge_weight`` is None; with several loops on one node, the last
one's weight, which is what PyG's index assignment gives on CPU).

Three implementations, tested equal (outputs and gradients w.r.t. ``x``):

* fast path, :class:`CSRAdjacency` / :class:`AdjacencyCache`: ``Â`` is normalised ONCE per graph
  and cached as a CSR matrix (row = target), so a forward is one sparse-dense product ``Â @ X``;
  the backward is ``Â^T @ G`` with a second cached CSR (``Â`` is symmetric only for undirected
  graphs). Gradients flow to ``x`` only, never to the adjacency or ``edge_weight``.
* exportable path, :class:`EdgeListAdjacency` / :func:`propagate_scatter`: gather + scatter-add
  over the edge list (``x[src] * w[:, None]`` summed into ``out[dst]``), with :func:`gcn_norm`
  written with static shapes (no boolean indexing, no ``.item()``), so it traces under
  ``torch.export`` with dynamic node and edge counts and exports to ONNX. ``scatter_add``
  (``ScatterElements``, reduction ``add``) is used rather than ``index_add_``, which some PyTorch
  versions exported wrongly for repeated indices; the test suite checks the export in ONNX Runtime
  with repeated destinations. It also supports autograd w.r.t. ``edge_weight``.
* reference, :func:`propagate_dense_ref`: the dense N x N matrix built entry by entry.

:func:`gcn_adjacency` normalises a graph once and returns a :class:`CSRAdjacency` (fast path) or an
:class:`EdgeListAdjacency` (exportable path), both with ``.propagate(x, bias=None)``, for a model
to share between its layers; :func:`propagate` is the one-call form. The exportable path is taken
while exporting or compiling, on the meta device / fake tensors / under a dispatch mode such as
``FlopCounterMode``, for dtypes the CSR product does not support on CPU (float16, bfloat16) and
when ``edge_weight`` requires a gradient (:func:`use_exportable_path`).
"""
from __future__ import annotations

import warnings
import weakref

import torch

__all__ = ["AdjacencyCache", "CSRAdjacency", "EdgeListAdjacency", "gcn_adjacency", "gcn_norm",
           "propagate", "propagate_dense_ref", "propagate_scatter", "propagate_sparse",
           "use_exportable_path"]


def _check_graph(edge_index: torch.Tensor, edge_weight: torch.Tensor | None) -> None:
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index)
        raise ValueError(f"edge_index.shape={shape} is not accepted: expected (2, E), "
                         f"row 0 = source, row 1 = target")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"edge_index.dtype={edge_index.dtype} is not accepted: expected torch.int64 "
                         f"(or torch.int32)")
    if edge_weight is not None and edge_weight.dim() != 1:
        raise ValueError(f"edge_weight.shape={tuple(edge_weight.shape)} is not accepted: expected "
                         f"(E,) with E = edge_index.shape[1] = {edge_index.shape[1]}")


def gcn_norm(edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None = None,
             *, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-loops and symmetric normalisation: the edge list of ``Â`` (pure function).

    Returns ``(edge_index_with_loops, norm_weight)``: the E input edges followed by the N self-loops
    ``(n, n)``, shape (2, E + N), and each edge's entry of ``Â``, shape (E + N,), so that
    ``Â[i, j] = sum of norm_weight over the edges j -> i``.

    Deviation from PyG's edge list (not its matrix): PyG drops the existing self-loops and appends
    one per node; here the existing self-loops stay in place with weight 0 and their weight moves to
    the appended loop. ``Â`` is the same, and the output shape depends only on E and N, never on the
    data, so this traces with dynamic shapes for ONNX export.

    ``dtype``: dtype of the weights (default: ``edge_weight``'s, else the default float dtype).
    """
    _check_graph(edge_index, edge_weight)
    edge_index = edge_index.long()
    src, dst = edge_index[0], edge_index[1]
    device = edge_index.device
    if dtype is None:
        dtype = edge_weight.dtype if edge_weight is not None else torch.get_default_dtype()
    is_loop = src == dst  # (E,)
    if edge_weight is None:
        weight = torch.ones(src.shape[0], dtype=dtype, device=device)  # (E,)
        loop_weight = torch.ones(num_nodes, dtype=dtype, device=device)  # (N,)
    else:
        weight = edge_weight.to(dtype)
        # The last existing self-loop of each node (-1: none), found without data-dependent shapes.
        position = torch.arange(src.shape[0], device=device)
        position = torch.where(is_loop, position, torch.full_like(position, -1))
        last = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
        last = last.scatter_reduce(0, src, position, reduce="amax", include_self=True)  # (N,)
        kept = weight[last.clamp(min=0)]
        loop_weight = torch.where(last >= 0, kept, torch.ones_like(kept))  # (N,)
    weight = weight.masked_fill(is_loop, 0.0)  # superseded by the appended loops
    nodes = torch.arange(num_nodes, device=device)
    edge_index = torch.cat([edge_index, torch.stack([nodes, nodes])], dim=1)  # (2, E + N)
    weight = torch.cat([weight, loop_weight])  # (E + N,)
    deg = torch.zeros(num_nodes, dtype=dtype, device=device).scatter_add(0, edge_index[1], weight)
    deg_inv_sqrt = deg.pow(-0.5)
    deg_inv_sqrt = deg_inv_sqrt.masked_fill(torch.isinf(deg_inv_sqrt), 0.0)  # isolated: 0, as PyG
    norm = deg_inv_sqrt[edge_index[0]] * weight * deg_inv_sqrt[edge_index[1]]
    return edge_index, norm


# ---------------------------------------------------------------------------------------------------
# Exportable path: gather + scatter-add over the edge list.
# ---------------------------------------------------------------------------------------------------

class EdgeListAdjacency:
    """``Â`` as its edge list (:func:`gcn_norm`'s output); propagation by gather + scatter-add.

    Everything here traces under ``torch.export`` with dynamic N and E (exportable path), and
    supports autograd w.r.t. ``edge_weight`` as well as ``x``.
    """

    def __init__(self, edge_index: torch.Tensor, norm: torch.Tensor):
        self.edge_index, self.norm = edge_index, norm  # (2, E + N), (E + N,)

    @classmethod
    def from_edge_index(cls, edge_index: torch.Tensor, num_nodes: int,
                        edge_weight: torch.Tensor | None = None, *,
                        dtype: torch.dtype | None = None) -> "EdgeListAdjacency":
        return cls(*gcn_norm(edge_index, num_nodes, edge_weight, dtype=dtype))

    def propagate(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``Â X (+ bias)``. Shapes: x (N, F), bias (F,) or None -> (N, F)."""
        src, dst = self.edge_index[0], self.edge_index[1]
        msg = x[src] * self.norm.unsqueeze(-1)  # (E + N, F): message of each edge j -> i
        index = dst.unsqueeze(-1).expand_as(msg)  # (E + N, F): its target row
        out = x.new_zeros(x.shape).scatter_add(0, index, msg)  # (N, F), summed at the target
        return out if bias is None else out + bias


def propagate_scatter(x: torch.Tensor, edge_index: torch.Tensor,
                      edge_weight: torch.Tensor | None = None) -> torch.Tensor:
    """``Â X`` as gather + scatter-add: the exportable path (ONNX with dynamic N and E).

    Shapes: x (N, F), edge_index (2, E) long, edge_weight (E,) or None -> (N, F).
    """
    if x.dim() != 2:
        raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: expected (N, F)")
    return EdgeListAdjacency.from_edge_index(edge_index, x.shape[0], edge_weight,
                                             dtype=x.dtype).propagate(x)


# ---------------------------------------------------------------------------------------------------
# Fast path: a cached CSR matrix.
# ---------------------------------------------------------------------------------------------------

def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """CSR (n x n) with ``M[rows[e], cols[e]] += values[e]``.

    Built by one stable sort on the row (a counting layout, half the cost of ``coalesce()``'s
    two-key sort and merge): duplicate (row, col) entries stay separate, which the product sums
    anyway. Indices are int32 when they fit: MKL's sparse product takes int32 indices, and with
    int64 ones PyTorch converts both index arrays on every call (a third of the product's time).
    """
    index_dtype = torch.int32 if max(n, values.numel()) < 2**31 - 1 else torch.int64
    order = torch.argsort(rows, stable=True)
    crow = torch.zeros(n + 1, dtype=index_dtype, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n).cumsum(0)  # (n + 1,) row starts
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols[order].to(index_dtype), values[order], (n, n),
                                       check_invariants=False)


class CSRAdjacency:
    """``Â`` of one graph as a CSR matrix (row = target, column = source), and ``Â^T`` on demand.

    ``adj`` (N, N) sparse CSR; :meth:`transposed` builds ``Â^T`` (for the backward) the first time
    it is needed and keeps it. Build with :meth:`from_edge_index`.
    """

    def __init__(self, edge_index: torch.Tensor, norm: torch.Tensor, num_nodes: int):
        keep = norm != 0  # the superseded self-loops (and zero-weight edges) add nothing
        self._src, self._dst, self._norm = edge_index[0][keep], edge_index[1][keep], norm[keep]
        self.num_nodes = num_nodes
        self.adj = _csr(self._dst, self._src, self._norm, num_nodes)  # Â[i, j], i = target
        self._adj_t: torch.Tensor | None = None

    @classmethod
    def from_edge_index(cls, edge_index: torch.Tensor, num_nodes: int,
                        edge_weight: torch.Tensor | None = None, *,
                        dtype: torch.dtype = torch.float32) -> "CSRAdjacency":
        _check_graph(edge_index, edge_weight)
        if edge_weight is not None and edge_weight.shape[0] != edge_index.shape[1]:
            raise ValueError(f"edge_weight.shape={tuple(edge_weight.shape)} is not accepted: "
                             f"expected ({edge_index.shape[1]},), one weight per edge")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index holds node ids in [{int(edge_index.min())}, "
                             f"{int(edge_index.max())}], not accepted: expected ids in "
                             f"[0, {num_nodes - 1}] for num_nodes={num_nodes}")
        with torch.no_grad():
            ei, norm = gcn_norm(edge_index, num_nodes,
                                None if edge_weight is None else edge_weight.detach(), dtype=dtype)
        return cls(ei, norm, num_nodes)

    def propagate(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``Â X (+ bias)``; see :func:`propagate_sparse`."""
        return propagate_sparse(x, self, bias)

    def transposed(self) -> torch.Tensor:
        """``Â^T`` (N, N) CSR, built once."""
        if self._adj_t is None:
            self._adj_t = _csr(self._src, self._dst, self._norm, self.num_nodes)
        return self._adj_t


def _spmm(adj: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``adj @ x (+ bias)`` in one ``addmm``: with a bias, the output starts as the broadcast bias;
    without, ``beta=0`` into an empty output (ignored, never read: no zero-fill and no copy, which
    ``adj @ x`` spends a third of its time on)."""
    if bias is not None:
        return torch.addmm(bias.expand(adj.shape[0], x.shape[1]), adj, x)
    out = x.new_empty(adj.shape[0], x.shape[1])
    return torch.addmm(out, adj, x, beta=0, out=out)


class _SparseMatmul(torch.autograd.Function):
    """``Â @ X + b`` with the backward ``dX = Â^T @ dY`` from the cached ``Â^T``, ``db = sum_i dY``
    (no gradient for ``Â``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor | None,
                adjacency: CSRAdjacency) -> torch.Tensor:
        ctx.adjacency = adjacency
        return _spmm(adjacency.adj, x, bias)  # (N, N) @ (N, F) -> (N, F)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _spmm(ctx.adjacency.transposed(), grad_out.contiguous(), None)
        if ctx.needs_input_grad[1]:
            grad_bias = grad_out.sum(0)
        return grad_x, grad_bias, None


def propagate_sparse(x: torch.Tensor, adjacency: CSRAdjacency,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """Fast ``Â X (+ bias)`` with a prebuilt :class:`CSRAdjacency`; autograd w.r.t. ``x`` and
    ``bias`` only. The bias is fused into the sparse product (GCN adds it right after).

    Shapes: x (N, F), bias (F,) or None -> (N, F).
    """
    if x.dim() != 2 or x.shape[0] != adjacency.num_nodes:
        raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: expected (N, F) with "
                         f"N = {adjacency.num_nodes}, the adjacency's node count")
    if torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad)):
        return _SparseMatmul.apply(x, bias, adjacency)
    return _spmm(adjacency.adj, x, bias)


class AdjacencyCache:
    """Keeps the :class:`CSRAdjacency` of the last graph seen, so that repeated forwards on
    the same graph skip the normalisation (as PyG's ``GCNConv(cached=True)``, but safe: a new graph
    is noticed and rebuilt, never silently reused).

    The key is the identity and in-place version counter of ``edge_index`` (and ``edge_weight``),
    plus ``num_nodes``, dtype and device. Tensors are held by weak reference, so a freed tensor whose
    ``id`` is reused never matches. An in-place edit of ``edge_index`` bumps its version and
    invalidates the entry. Pickling / deep-copying drops the cached matrices.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._refs: tuple = ()
        self._value: CSRAdjacency | None = None
        self.builds = 0  # how many times a normalisation ran (for tests and benchmarks)

    @staticmethod
    def _key_of(edge_index, num_nodes, edge_weight, dtype, device) -> tuple:
        ew = None if edge_weight is None else (id(edge_weight), edge_weight._version)
        return (id(edge_index), edge_index._version, int(num_nodes), ew, dtype, str(device))

    def get(self, edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None = None,
            *, dtype: torch.dtype = torch.float32) -> CSRAdjacency:
        """The cached ``Â`` of this graph, normalising it only if the graph changed."""
        key = self._key_of(edge_index, num_nodes, edge_weight, dtype, edge_index.device)
        alive = all(r() is t for r, t in zip(self._refs, (edge_index, edge_weight)) if t is not None)
        if self._value is None or key != self._key or not alive:
            self._value = CSRAdjacency.from_edge_index(edge_index, num_nodes, edge_weight,
                                                              dtype=dtype)
            self._key = key
            self._refs = tuple(weakref.ref(t) if t is not None else (lambda: None)
                               for t in (edge_index, edge_weight))
            self.builds += 1
        return self._value

    def clear(self) -> None:
        self._key, self._refs, self._value = None, (), None

    def __getstate__(self) -> dict:
        return {"builds": self.builds}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        self.builds = state.get("builds", 0)

    def __deepcopy__(self, memo) -> "AdjacencyCache":
        return AdjacencyCache()


# ---------------------------------------------------------------------------------------------------
# Dispatch and the dense reference.
# ---------------------------------------------------------------------------------------------------

_SPARSE_DTYPES = (torch.float32, torch.float64)


def _is_fake(t: torch.Tensor) -> bool:
    try:
        from torch._subclasses.fake_tensor import is_fake
    except ImportError:  # pragma: no cover - private API moved
        return False
    return is_fake(t)


def _dispatch_mode_active() -> bool:
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode
    except ImportError:  # pragma: no cover - private API moved
        return False
    return _get_current_dispatch_mode() is not None


def use_exportable_path(x: torch.Tensor, edge_weight: torch.Tensor | None = None) -> bool:
    """True when :func:`propagate_scatter` must be used instead of the CSR product.

    That is: while exporting or compiling; on meta or fake tensors; under any Python dispatch mode
    (``FakeTensorMode``, ``FlopCounterMode``, which would count the sparse product as a dense
    N x N one, and other tracers: plain ops are what every such tool understands); for dtypes the
    CSR product does not support on CPU; and when ``edge_weight`` needs a gradient.
    """
    return (torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
            or torch.compiler.is_compiling() or x.device.type == "meta" or _is_fake(x)
            or _dispatch_mode_active() or x.dtype not in _SPARSE_DTYPES
            or (edge_weight is not None and edge_weight.requires_grad))


def gcn_adjacency(edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None = None,
                  *, like: torch.Tensor, cache: AdjacencyCache | None = None
                  ) -> CSRAdjacency | EdgeListAdjacency:
    """``Â`` of a graph, ready to multiply tensors like ``like`` (dtype, device): a cached
    :class:`CSRAdjacency` in eager mode, an :class:`EdgeListAdjacency` when
    :func:`use_exportable_path`. Both have ``.propagate(x)``.

    A model builds this once per forward and hands it to every layer, so the graph is normalised
    once (once per graph with a ``cache``; in an exported graph, once per run).
    """
    if use_exportable_path(like, edge_weight):
        return EdgeListAdjacency.from_edge_index(edge_index, num_nodes, edge_weight, dtype=like.dtype)
    cache = cache if cache is not None else AdjacencyCache()
    return cache.get(edge_index, num_nodes, edge_weight, dtype=like.dtype)


def propagate(x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None,
              *, cache: AdjacencyCache | None = None) -> torch.Tensor:
    """``Â X``: the cached CSR fast path in eager mode, gather + scatter-add when exporting.

    ``cache``: an :class:`AdjacencyCache`, so a repeated call on the same graph skips the
    normalisation; without one, ``Â`` is built for this call only.
    Shapes: x (N, F), edge_index (2, E), edge_weight (E,) or None -> (N, F).
    """
    if x.dim() != 2:
        raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: expected (N, F)")
    return gcn_adjacency(edge_index, x.shape[0], edge_weight, like=x, cache=cache).propagate(x)


def propagate_dense_ref(x: torch.Tensor, edge_index: torch.Tensor,
                        edge_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: build ``Â`` densely, entry by entry, and multiply. For small graphs (N x N memory).

    Shapes: x (N, F), edge_index (2, E), edge_weight (E,) or None -> (N, F).
    """
    _check_graph(edge_index, edge_weight)
    n = x.shape[0]
    src, dst = edge_index[0].tolist(), edge_index[1].tolist()
    w = [1.0] * len(src) if edge_weight is None else edge_weight.detach().tolist()
    a = torch.zeros(n, n, dtype=torch.float64)
    loop = [1.0] * n  # fill value 1 for a node without a self-loop
    for j, i, wij in zip(src, dst, w):
        if i == j:
            loop[i] = wij if edge_weight is not None else 1.0  # the last existing loop wins
        else:
            a[i, j] += wij  # message j -> i lands in row i; duplicates add up
    a += torch.diag(torch.tensor(loop, dtype=torch.float64))
    deg = a.sum(dim=1)  # degree at the target, self-loop included
    d = torch.where(deg == 0, torch.zeros_like(deg), deg.pow(-0.5))  # isolated: 0, as PyG
    a_hat = d[:, None] * a * d[None, :]
    return a_hat.to(x.dtype) @ x
