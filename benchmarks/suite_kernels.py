"""``zoo-bench kernels``: each kernel against its reference twin and the library users would use.

Every row is a pair timed in interleaved runs (:func:`zoo.factory.timing.time_interleaved`), with the
largest absolute difference of their outputs (same inputs, same weights) beside the times:

* GCN propagation ``Â X``: the cached CSR fast path vs its exportable gather/scatter twin (full
  graph), and vs the dense reference (on a subgraph of at most ``DENSE_REF_MAX_NODES`` nodes: the
  reference is N x N);
* a 2-layer GCN (hidden 64): ``zoo.create("gcn")`` vs a stack of
  ``torch_geometric.nn.GCNConv(cached=True)``, forward (inference) and a training step
  (forward + cross-entropy + backward + Adam step), same weights, same graph;
* attention: :func:`zoo.kernels.attention.attention` (SDPA) vs :func:`zoo.kernels.attention.attention_ref`,
  without and with a key padding mask;
* LSTM: ``nn.LSTM`` (the fast path) vs :func:`zoo.kernels.lstm_cell.lstm_ref`, same weights.

Ratios are ours / theirs: below 1 means ours is faster.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.factory.timing import physical_cores, runtime_info, time_interleaved, torch_threads

from .report import figure, plot_figures, print_header, print_table, progress, ratio, write_json

DENSE_REF_MAX_NODES = 2000
ATTN_HEADS, ATTN_DIM = 8, 64
LSTM_LAYERS, LSTM_HIDDEN = 2, 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=100_000, help="GCN graph: nodes")
    parser.add_argument("--edges", type=int, default=1_000_000, help="GCN graph: directed edges")
    parser.add_argument("--features", type=int, default=64, help="GCN input features")
    parser.add_argument("--hidden", type=int, default=64, help="GCN hidden width")
    parser.add_argument("--classes", type=int, default=16, help="GCN output classes")
    parser.add_argument("--batch", type=int, default=8, help="attention / LSTM batch")
    parser.add_argument("--seq-len", type=int, default=256, help="attention / LSTM sequence length")
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="timed runs per pair")
    parser.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs first")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads (default: physical cores)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", default=None, metavar="PATH", help="ours vs theirs per row (.png/.svg)")


def _check(args) -> None:
    for name in ("nodes", "features", "hidden", "classes", "batch", "seq_len", "runs", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}={value} is not accepted: expected >= 1")
    for name in ("edges", "warmup"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name}={getattr(args, name)} is not accepted: expected >= 0")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def _pair(kernel: str, case: str, ours_name: str, theirs_name: str, ours, theirs, args,
          *, diff: float | None, grad: bool = False) -> dict:
    """Time ``ours`` and ``theirs`` interleaved (under no_grad unless ``grad``: not inference mode,
    whose tensors could not be reused by a later training step, e.g. PyG's cached Â); one row."""
    mode = torch.enable_grad() if grad else torch.no_grad()
    with mode:
        t = time_interleaved({"ours": ours, "theirs": theirs}, warmup=args.warmup, runs=args.runs)
    a, b = figure(t["ours"]), figure(t["theirs"])
    return {"kernel": kernel, "case": case, "ours_name": ours_name, "theirs_name": theirs_name,
            "ours": a, "theirs": b, "ours_over_theirs": ratio(a, b), "max_abs_diff": diff}


# --- GCN ---------------------------------------------------------------------------------------

def _graph(nodes: int, edges: int, features: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, features, generator=g)
    edge_index = torch.randint(0, nodes, (2, edges), generator=g)
    return x, edge_index


class _PyGStack(nn.Module):
    """``GCNConv(cached=True)`` layers with ReLU between: what a PyG user writes."""

    def __init__(self, widths: list[int]):
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.convs = nn.ModuleList(GCNConv(a, b, cached=True) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x, edge_index):
        for k, conv in enumerate(self.convs):
            if k:
                x = F.relu(x)
            x = conv(x, edge_index)
        return x


def gcn_rows(args) -> list[dict]:
    import zoo
    from zoo.kernels.gcn_propagation import AdjacencyCache, propagate, propagate_dense_ref, propagate_scatter

    rows = []
    x, edge_index = _graph(args.nodes, args.edges, args.features)
    graph = f"N={args.nodes:,} E={args.edges:,} F={args.features}"

    cache = AdjacencyCache()
    with torch.no_grad():
        diff = _max_diff(propagate(x, edge_index, cache=cache), propagate_scatter(x, edge_index))
    rows.append(_pair("gcn propagate", graph, "CSR, cached Â", "gather/scatter twin",
                      lambda: propagate(x, edge_index, cache=cache),
                      lambda: propagate_scatter(x, edge_index), args, diff=diff))

    n_small = min(args.nodes, DENSE_REF_MAX_NODES)
    e_small = max(1, round(args.edges * n_small / args.nodes))
    xs, eis = _graph(n_small, e_small, args.features, seed=1)
    small_cache = AdjacencyCache()
    with torch.no_grad():
        diff = _max_diff(propagate(xs, eis, cache=small_cache), propagate_dense_ref(xs, eis))
    rows.append(_pair("gcn propagate", f"N={n_small:,} E={e_small:,} F={args.features}",
                      "CSR, cached Â", "dense reference (builds Â)",
                      lambda: propagate(xs, eis, cache=small_cache),
                      lambda: propagate_dense_ref(xs, eis), args, diff=diff))

    torch.manual_seed(0)
    ours = zoo.create("gcn", in_features=args.features, hidden=args.hidden, layers=2,
                      num_classes=args.classes)
    theirs = _PyGStack([args.features, args.hidden, args.classes])
    for k, conv in enumerate(theirs.convs):  # same weights: our layer's names are GCNConv's
        conv.lin.weight.data.copy_(ours.layers[k].lin.weight.data)
        conv.bias.data.copy_(ours.layers[k].bias.data)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        diff = _max_diff(ours(x, edge_index), theirs(x, edge_index))
    rows.append(_pair("gcn 2-layer", f"{graph}, forward", "zoo gcn", "PyG GCNConv(cached=True)",
                      lambda: ours(x, edge_index), lambda: theirs(x, edge_index), args, diff=diff))

    ours.train(), theirs.train()
    labels = torch.randint(0, args.classes, (args.nodes,), generator=torch.Generator().manual_seed(2))
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3)

    def step(model, opt):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x, edge_index), labels)
        loss.backward()
        opt.step()
        return loss.detach()

    diff = abs(float(step(ours, opt_ours)) - float(step(theirs, opt_theirs)))  # same first loss
    rows.append(_pair("gcn 2-layer", f"{graph}, train step (fwd+bwd+Adam)", "zoo gcn",
                      "PyG GCNConv(cached=True)", lambda: step(ours, opt_ours),
                      lambda: step(theirs, opt_theirs), args, diff=diff, grad=True))
    return rows


# --- attention and LSTM --------------------------------------------------------------------------

def attention_rows(args) -> list[dict]:
    from zoo.kernels.attention import attention, attention_ref

    g = torch.Generator().manual_seed(3)
    b, t = args.batch, args.seq_len
    q, k, v = (torch.randn(b, ATTN_HEADS, t, ATTN_DIM, generator=g) for _ in range(3))
    pad = torch.zeros(b, t, dtype=torch.bool)
    pad[:, t - t // 4:] = True  # the last quarter of every sequence is padding
    shape = f"B={b} H={ATTN_HEADS} T={t} D={ATTN_DIM}"
    rows = []
    for case, kw in ((shape, {}), (f"{shape}, key padding mask", {"key_padding_mask": pad})):
        with torch.no_grad():
            diff = _max_diff(attention(q, k, v, **kw), attention_ref(q, k, v, **kw))
        rows.append(_pair("attention", case, "SDPA fast path", "attention_ref",
                          lambda kw=kw: attention(q, k, v, **kw),
                          lambda kw=kw: attention_ref(q, k, v, **kw), args, diff=diff))
    return rows


def lstm_rows(args) -> list[dict]:
    from zoo.kernels.lstm_cell import lstm_ref, lstm_weights

    torch.manual_seed(4)
    b, t = args.batch, args.seq_len
    lstm = nn.LSTM(ATTN_DIM, LSTM_HIDDEN, num_layers=LSTM_LAYERS, batch_first=True).eval()
    x = torch.randn(b, t, ATTN_DIM)
    weights = lstm_weights(lstm)
    with torch.no_grad():
        diff = _max_diff(lstm(x)[0], lstm_ref(x, weights, num_layers=LSTM_LAYERS)[0])
    return [_pair("lstm", f"B={b} T={t} I={ATTN_DIM} H={LSTM_HIDDEN} L={LSTM_LAYERS}", "nn.LSTM",
                  "lstm_ref", lambda: lstm(x), lambda: lstm_ref(x, weights, num_layers=LSTM_LAYERS),
                  args, diff=diff)]


def run(args: argparse.Namespace) -> int:
    _check(args)
    threads = args.threads or physical_cores()
    info = runtime_info()
    info["bench_threads"] = threads
    print_header("kernels", info)
    print(f"{args.warmup} warm-up + {args.runs} timed runs per pair, interleaved; {threads} torch "
          f"threads; figures: median [min-max]; ratio ours/theirs (< 1: ours faster)\n")
    rows: list[dict] = []
    with torch_threads(threads):
        for suite in progress((gcn_rows, attention_rows, lstm_rows), desc="kernels", total=3):
            rows.extend(suite(args))
    print_table(rows, [("kernel", "kernel"), ("case", "case"), ("ours_name", "ours"),
                       ("ours", "ours ms"), ("theirs_name", "theirs"), ("theirs", "theirs ms"),
                       ("ours_over_theirs", "ours/theirs"),
                       ("max_abs_diff", "max|diff|", lambda v: "-" if v is None else f"{v:.1e}")])
    if args.json:
        write_json(args.json, "kernels", info, vars(args), rows)
        print(f"\nwrote {args.json}")
    if args.plot:
        labels = [f"{r['kernel']}: {r['case']}" for r in rows]
        plot_figures(args.plot, labels, {"ours": [r["ours"] for r in rows],
                                         "theirs": [r["theirs"] for r in rows]},
                     title=f"kernels, {threads} threads, {info['device']}")
        print(f"wrote {args.plot}")
    return 0

