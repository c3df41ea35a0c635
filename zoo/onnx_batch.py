"""Make the batch axis of a statically exported ONNX graph symbolic, when that is provably safe.

Tracing with a symbolic batch cost ``torch.export`` and the ONNX exporter's decomposition about
1.5-2 s more than a fixed batch for a 224-px ResNet-50 on this project's 2-core machine (cold:
5.6 s against 3.8 s). :func:`make_batch_dynamic` takes the graph exported at a fixed batch
``b`` and renames the batch axis of every input and output to the symbol ``batch`` — but only
after proving that no operator mixes samples or depends on ``b``:

Values that *carry the batch* (axis 0 is the sample index) are the graph inputs and the outputs of
the operators below applied to them. Each operator must act on each sample on its own, with the
same arithmetic whatever ``b`` is:

* per-element operators (activations, ``Cast``, ...) and operators over the non-batch axes
  (``Conv``, pooling, ``BatchNormalization``, ``Flatten`` with ``axis >= 1``, reductions, softmax,
  ``Concat``, ``Transpose``, ``Squeeze``/``Unsqueeze``, ``Split`` with an ``axis`` other than 0);
* element-wise binary operators whose batch-free operand broadcasts without touching axis 0
  (lower rank, or size 1 there); ``Gemm``/``MatMul`` with a constant right operand;
* ``Reshape`` from ``(b, r...)`` to ``(b, s...)`` with ``prod(r) == prod(s)`` (per sample, in
  row-major order): its constant ``b`` is rewritten as ``-1``.

Anything else that reads a batch-carrying value (``Shape``, ``Gather``, a constant ``Reshape``
target not of that form, an axis list naming axis 0, ...) makes the proof fail: the function
returns ``False`` and leaves ``proto`` untouched, and the caller exports with a symbolic batch.
Every output must carry the batch. Shapes are those the exporter recorded (``value_info``) for
the fixed-batch graph; a value without a known shape where one is needed fails the proof.
"""
from __future__ import annotations

import math

import numpy as np

# Operators that act on each sample alone whatever their attributes.
_SAMPLEWISE = frozenset({
    "Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Identity", "Erf", "Gelu", "Dropout",
    "Cast", "Neg", "Exp", "Log", "Sqrt", "Abs", "LeakyRelu", "Elu", "Selu", "Mish", "Softplus",
    "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Not", "IsNaN", "IsInf", "PRelu",
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
    "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth",
})
# Element-wise operators with numpy broadcasting between their inputs.
_BROADCAST = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where",
                        "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or",
                        "Clip", "Mod", "BitShift", "PRelu"})
# Operators with an ``axis`` attribute that must not be the batch axis (default in brackets).
_AXIS_ATTR = {"Softmax": -1, "LogSoftmax": -1, "Hardmax": -1, "LayerNormalization": -1,
              "Concat": None, "Flatten": 1, "Split": 0, "CumSum": None}
# Reductions: axes as the second input (opset 18) or attribute.
_REDUCE = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd",
                     "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax",
                     "ArgMin"})


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def make_batch_dynamic(proto, batch: int, symbol: str = "batch") -> bool:
    """Rename axis 0 (size ``batch``) of every graph input and output of ``proto`` (exported at
    that fixed batch) to ``symbol``, in place, if the module docstring's proof holds; return
    whether it did. ``proto`` is unchanged when it returns ``False``."""
    from onnx import numpy_helper

    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    shapes = {}  # the exporter records every value's (here fixed) shape; a missing one fails
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for name, value in consts.items():
        shapes.setdefault(name, list(value.shape))
    carries = {vi.name for vi in graph.input if vi.name not in consts}
    if not carries or any(shapes.get(n, [None])[:1] != [batch] for n in carries):
        return False
    rewrites = []  # (Reshape node, new shape constant name)
    for node in graph.node:
        ins = [n for n in node.input if n]
        batched = [n for n in ins if n in carries]
        if not batched:
            continue
        if not _samplewise(node, ins, batched, consts, shapes, batch, rewrites):
            return False
        carries.update(o for o in node.output if o)
    outputs = [vi.name for vi in graph.output]
    if not all(o in carries and shapes.get(o, [None])[:1] == [batch] for o in outputs):
        return False
    for node, target in rewrites:
        fixed = target.copy()
        fixed[0] = -1
        name = f"{node.input[1]}_batch_free"
        graph.initializer.append(numpy_helper.from_array(fixed.astype(np.int64), name))
        node.input[1] = name
    for vi in [*graph.input, *graph.output]:
        if vi.name in carries or vi.name in outputs:
            vi.type.tensor_type.shape.dim[0].ClearField("dim_value")
            vi.type.tensor_type.shape.dim[0].dim_param = symbol
    del graph.value_info[:]  # fixed-batch shapes of intermediate values; ORT infers them again
    return True


def _rank(name, shapes) -> int | None:
    return len(shapes[name]) if name in shapes else None


def _samplewise(node, ins, batched, consts, shapes, batch, rewrites) -> bool:
    """Whether ``node`` (reading the batch-carrying ``batched`` among ``ins``) acts per sample."""
    op, attrs = node.op_type, _attrs(node)
    first = ins[0]
    if first not in batched and op not in _BROADCAST:
        return False  # e.g. a weight computed from the batch, or MatMul(const, x)
    out_rank = _rank(node.output[0], shapes)
    if op in _SAMPLEWISE:
        return op not in ("Conv", "BatchNormalization", "PRelu") or batched == [first]
    if op in _BROADCAST:
        if out_rank is None:
            return False
        for n in ins:
            r = _rank(n, shapes)
            if r is None:
                return False
            if n in batched:
                if r != out_rank:
                    return False  # its axis 0 would not be the output's axis 0
            elif r == out_rank and shapes[n][0] != 1:
                return False  # a batch-free operand with a full-size axis 0
        return True
    if op in _AXIS_ATTR:
        r = _rank(first, shapes)
        axis = attrs.get("axis", _AXIS_ATTR[op])
        if r is None or axis is None or axis % r == 0 or (op == "Flatten" and axis < 0):
            return False
        if op == "Concat":
            return all(n in batched and _rank(n, shapes) == r for n in ins)
        return op != "Split" or all(n in batched or n in consts for n in ins)
    if op in _REDUCE:
        r = _rank(first, shapes)
        axes = attrs.get("axes", attrs.get("axis"))
        if len(ins) > 1:
            if ins[1] not in consts:
                return False
            axes = consts[ins[1]].reshape(-1).tolist()
        if r is None or axes is None or (not list(np.atleast_1d(axes)) and op.startswith("Reduce")):
            return False  # no axes: a reduction over every axis, the batch included
        return all(int(a) % r != 0 for a in np.atleast_1d(axes))
    if op == "Transpose":
        perm = attrs.get("perm")
        return perm is not None and perm[0] == 0
    if op in ("Squeeze", "Unsqueeze"):
        r = _rank(first if op == "Squeeze" else node.output[0], shapes)
        axes = attrs.get("axes")
        if len(ins) > 1:
            axes = consts[ins[1]].reshape(-1).tolist() if ins[1] in consts else None
        return r is not None and bool(axes) and all(int(a) % r != 0 for a in axes)
    if op == "Gemm":
        return (batched == [first] and not attrs.get("transA", 0)
                and all(n in consts for n in ins[1:])
                and (len(ins) < 3 or consts[ins[2]].ndim < 2 or consts[ins[2]].shape[0] == 1))
    if op == "MatMul":
        r = _rank(first, shapes)
        if r is None or r < 2 or len(ins) != 2:
            return False
        if ins[1] in consts:
            return consts[ins[1]].ndim == 2
        return ins[1] in batched and r >= 3 and _rank(ins[1], shapes) == r
    if op == "Reshape":
        if batched != [first] or ins[1] not in consts or attrs.get("allowzero", 0):
            return False
        target = consts[ins[1]].reshape(-1).astype(np.int64)
        src = shapes.get(first)
        if (src is None or target.size < 1 or target[0] != batch or (target <= 0).any()
                or math.prod(src[1:]) != math.prod(target[1:].tolist())):
            return False
        rewrites.append((node, target))
        return True
    return False
