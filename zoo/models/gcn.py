"""Graph convolutional network (Kipf & Welling, ICLR 2017, "Semi-Supervised Classification with
Graph Convolutional Networks"), numerically ``torch_geometric.nn.GCNConv``."""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.kernels.gcn_propagation import (AdjacencyCache, CSRAdjacency, EdgeListAdjacency,
                                     gcn_adjacency)

from ..arguments import check, placement
from ..base import ZooModel
from ..registry import register_model
from ..scaling import scale_depth, scale_width


class GCNLayer(nn.Module):
    """One graph convolution, ``X' = Â X W + b`` with ``Â = D^-1/2 (A + I) D^-1/2`` (eq. 2).

    Per node: ``x'_i = W^T sum_{j -> i} w_ji / sqrt(deg_j deg_i) x_j + b``, self-loops included,
    degree at the target; see :mod:`zoo.kernels.gcn_propagation` for the exact convention (PyG's).

    Parameters and init are PyG ``GCNConv``'s: ``lin.weight`` (out, in) Glorot-uniform, no bias in
    ``lin``, and a separate ``bias`` (out,) initialised to zero, so a ``GCNConv`` state_dict loads
    into this layer as is.

    Deviation (numerics only): since ``Â (X W) = (Â X) W``, the sparse product is taken on the
    narrower side: ``Â (X W)`` when out < in (PyG always does this), ``(Â X) W`` otherwise. On a
    tie, propagating the input first means that in the first layer the propagated tensor needs
    no gradient, so the backward skips a sparse product. Results differ from PyG by rounding only.

    Shapes: x (N, in_features), edge_index (2, E), edge_weight (E,) or None -> (N, out_features).
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.in_features, self.out_features = in_features, out_features
        self.lin = nn.Linear(in_features, out_features, bias=False, **fk)
        self.bias = nn.Parameter(torch.empty(out_features, **fk)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot & Bengio (2010) uniform for the weight and a zero bias, as PyG's GCNConv.
        nn.init.xavier_uniform_(self.lin.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_weight: torch.Tensor | None = None, *, cache: AdjacencyCache | None = None,
                adjacency: CSRAdjacency | EdgeListAdjacency | None = None) -> torch.Tensor:
        """``adjacency``: a prebuilt ``Â`` (:func:`zoo.kernels.gcn_propagation.gcn_adjacency`) shared
        by the layers of a model; else built here (through ``cache`` when given)."""
        if adjacency is None:
            adjacency = gcn_adjacency(edge_index, x.shape[0], edge_weight, like=x, cache=cache)
        if self.out_features < self.in_features:
            return adjacency.propagate(self.lin(x), self.bias)  # (N, in) -> (N, out) -> (N, out)
        return F.linear(adjacency.propagate(x), self.lin.weight, self.bias)  # (N, in) -> (N, out)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class GCN(ZooModel):
    """``layers`` :class:`GCNLayer` s, ReLU and dropout between them, node logits out.

    ``in_features -> hidden -> ... -> hidden -> num_classes``; with ``layers=1`` a single layer maps
    ``in_features -> num_classes``. Kipf & Welling's model is ``layers=2`` with dropout.

    ``forward(x, edge_index, edge_weight=None)`` in PyG's convention (row 0 = source, row 1 =
    target), or ``forward(data)`` with anything carrying ``.x`` and ``.edge_index`` (and optionally
    ``.edge_weight``), e.g. a ``torch_geometric.data.Data``. The normalised adjacency is built once
    per graph and shared by every layer (:class:`zoo.kernels.gcn_propagation.AdjacencyCache`); during
    ONNX export the layers use the exportable gather/scatter path.

    Shapes: x (N, in_features), edge_index (2, E) long -> (N, num_classes).
    """

    input_names = ("x", "edge_index")

    def __init__(self, in_features: int, num_classes: int, hidden: int, layers: int, *,
                 dropout: float = 0.0, num_nodes: int = 64, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes, hidden=hidden, layers=layers,
              dropout=dropout, num_nodes=num_nodes)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features, self.num_nodes = in_features, num_nodes
        widths = [in_features] + [hidden] * (layers - 1) + [num_classes]
        self.layers = nn.ModuleList(GCNLayer(a, b, **fk) for a, b in zip(widths[:-1], widths[1:]))
        self.drop = nn.Dropout(dropout)
        self.adjacency_cache = AdjacencyCache()  # not a buffer: never saved, rebuilt per graph

    def forward(self, x, edge_index: torch.Tensor | None = None,
                edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        if hasattr(x, "x") and hasattr(x, "edge_index"):  # a PyG Data / Batch, duck-typed
            data = x
            x, edge_index = data.x, data.edge_index
            edge_weight = edge_weight if edge_weight is not None else getattr(data, "edge_weight", None)
        if edge_index is None:
            raise ValueError("edge_index=None is not accepted: pass forward(x, edge_index) or an "
                             "object with .x and .edge_index (torch_geometric.data.Data)")
        # Â is normalised once for all layers (and, in eager mode, once per graph: the cache).
        adjacency = gcn_adjacency(edge_index, x.shape[0], edge_weight, like=x,
                                  cache=self.adjacency_cache)
        for k, layer in enumerate(self.layers):
            if k:
                # In place: a layer's output is not saved by its own backward.
                x = self.drop(F.relu(x, inplace=True))
            x = layer(x, edge_index, edge_weight, adjacency=adjacency)
        return x  # (N, num_classes)

    def example_inputs(self, batch_size: int = 1, *, num_nodes: int | None = None,
                       num_edges: int | None = None) -> tuple[torch.Tensor, ...]:
        """``batch_size`` disjoint copies of one random directed graph, as PyG batches graphs.

        One copy has ``num_nodes`` nodes (default: the model's) and ``num_edges`` edges (default 4
        per node), about 5 % of them duplicates of others; returns ``x`` (N, in_features) with
        N = num_nodes * batch_size and ``edge_index`` (2, E) long with E = num_edges * batch_size.
        """
        n = self.num_nodes if num_nodes is None else int(num_nodes)
        e = 4 * n if num_edges is None else int(num_edges)
        if n < 1 or e < 0 or batch_size < 1:
            raise ValueError(f"num_nodes={num_nodes!r}, num_edges={num_edges!r}, "
                             f"batch_size={batch_size!r} are not accepted: expected num_nodes >= 1, "
                             f"num_edges >= 0, batch_size >= 1")
        place = self._placement()
        dup = e // 20 if e >= 20 else 0
        edges = torch.randint(0, n, (2, e - dup), device=place["device"])
        picks = torch.randint(0, max(e - dup, 1), (dup,), device=place["device"])
        edges = torch.cat([edges, edges[:, picks]], dim=1) if dup else edges  # (2, e)
        offsets = torch.arange(batch_size, device=place["device"]) * n  # copy b holds nodes b*n..
        edge_index = (edges[:, None, :] + offsets[None, :, None]).reshape(2, -1)  # (2, B * e)
        x = torch.randn(n * batch_size, self.in_features, **place)
        return x, edge_index


@register_model(family="gcn", input_kind="graph", reference="torch_geometric.nn.GCNConv")
def gcn(*, in_features: int = 16, num_classes: int = 1, hidden: int = 64, layers: int = 2,
        dropout: float = 0.0, num_nodes: int = 64, width_mult: float = 1.0, depth_mult: float = 1.0,
        device=None, dtype=None) -> GCN:
    """GCN (Kipf & Welling 2017): ``layers`` graph convolutions of width ``hidden`` (both scaled).

    ``num_nodes`` only sizes the example graph of :meth:`GCN.example_inputs`.
    """
    return GCN(in_features, num_classes, scale_width(hidden, width_mult),
               scale_depth(layers, depth_mult), dropout=dropout, num_nodes=num_nodes,
               device=device, dtype=dtype)
