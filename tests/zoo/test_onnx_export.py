"""ONNX export, driven by the registry: every model's file runs in ONNX Runtime and equals PyTorch.

One file per model is checked at batch 1 and batch 4 (graph models: different node and edge
counts, and a graph with repeated destination indices). BatchNorm running statistics are
randomised first, so a wrong Conv+BN fold would show.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import zoo
from tests.conftest import build_small
from zoo.onnx_export import read_onnx_metadata

MODELS = zoo.list_models()
RTOL = 1e-4


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (the brief's relative error)."""
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def _randomise_norm_stats(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine terms, mild enough that a 100-layer net stays
    well conditioned in float32 (zero-initialised gammas stay zero, residual branches stay small)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                if m.affine:
                    m.weight.mul_(torch.rand(m.weight.shape, generator=g) * 0.4 + 0.8)
                    m.bias.add_(torch.randn(m.bias.shape, generator=g) * 0.05)


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _graph_cases(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Graphs of other sizes than the example, and one with repeated destination indices."""
    feats = model.example_inputs()[0].shape[1]
    g = torch.Generator().manual_seed(2)
    cases = []
    for nodes, edges in ((3, 4), (37, 150)):
        cases.append((torch.randn(nodes, feats, generator=g),
                      torch.randint(0, nodes, (2, edges), generator=g)))
    repeated = torch.tensor([[0, 1, 2, 3, 4, 0, 4, 4], [1, 1, 1, 2, 2, 1, 0, 1]])  # node 1 x5
    cases.append((torch.randn(5, feats, generator=g), repeated))
    return cases


@pytest.mark.parametrize("name", MODELS)
def test_onnx_runtime_equals_pytorch(name, tmp_path):
    model = build_small(name)
    _randomise_norm_stats(model)
    model.eval()
    path = zoo.export_onnx(model, tmp_path / f"{name}.onnx")
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.onnx"]  # single file, no .data
    is_graph = zoo.get_entry(name).input_kind == "graph"
    cases = _graph_cases(model) if is_graph else [model.example_inputs(batch_size=b) for b in (1, 4)]
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == list(model.input_names)
    assert [o.name for o in sess.get_outputs()] == list(model.output_names)
    for inputs in cases:
        with torch.no_grad():
            want = model(*inputs)
        want = want[0] if isinstance(want, (tuple, list)) else want
        got = sess.run(None, {n: t.numpy() for n, t in zip(model.input_names, inputs)})[0]
        assert got.shape == tuple(want.shape)
        err = _rel_err(got, want.numpy())
        assert err <= RTOL, f"{name}: ONNX Runtime vs PyTorch relative error {err:.2e} at " \
                            f"input shapes {[tuple(t.shape) for t in inputs]}"


TOKEN_MODELS = [n for n in MODELS if "vocab_size" in zoo.get_entry(n).defaults]


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_token_id_inputs_export_with_their_range(name, tmp_path):
    model = build_small(name, vocab_size=30).eval()
    path = zoo.export_onnx(model, tmp_path / f"{name}.onnx")
    (desc,) = read_onnx_metadata(path)["inputs"]
    assert desc["dtype"] == "int64" and 1 <= desc["high"] <= 30  # a timer draws ids below it
    sess = _session(path)
    for batch in (1, 4):
        x = model.example_inputs(batch_size=batch)[0]
        with torch.no_grad():
            assert _rel_err(sess.run(None, {"x": x.numpy()})[0], model(x).numpy()) <= RTOL


def test_export_leaves_model_untouched(tmp_path):
    model = build_small("mlp", norm="batchnorm").train()
    _randomise_norm_stats(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zoo.export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_metadata_carries_config_spec_and_inputs(tmp_path):
    model = build_small("mlp").eval()
    model.spec = {"family": "mlp", "params": 123, "reasons": ["test"]}
    path = zoo.export_onnx(model, tmp_path / "m.onnx")
    meta = read_onnx_metadata(path)
    assert meta["config"] == model.config
    assert meta["spec"] == model.spec
    assert meta["inputs"][0]["name"] == "x" and meta["inputs"][0]["dtype"] == "float32"
    assert meta["dynamic_axes"] == {"x": {"0": "batch"}}
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["zoo.config"]) == model.config
    assert zoo.from_config(meta["config"]).config == model.config


def test_static_batch_and_opset(tmp_path):
    model = build_small("mlp").eval()
    path = zoo.export_onnx(model, tmp_path / "m.onnx", batch_size=3, dynamic_batch=False, opset=19)
    proto = onnx.load(str(path))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3, 12]
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {19}
    x = model.example_inputs(batch_size=3)[0]
    got = _session(path).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        assert _rel_err(got, model(x).numpy()) <= RTOL


def test_failed_export_writes_nothing_and_keeps_a_good_file(tmp_path):
    model = build_small("mlp").eval()
    path = tmp_path / "m.onnx"
    broken = build_small("mlp").eval()
    # Example inputs of the wrong width: tracing fails inside the exporter.
    broken.example_inputs = lambda batch_size=1: (torch.randn(batch_size, 99),)
    with pytest.raises(RuntimeError, match="ONNX export of mlp failed"):
        zoo.export_onnx(broken, path)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind
    zoo.export_onnx(model, path)
    good = path.read_bytes()
    with pytest.raises(RuntimeError):
        zoo.export_onnx(broken, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size=0"),
    ({"batch_size": 2.0}, "batch_size=2.0"),
    ({"opset": 7}, "opset=7"),
])
def test_bad_arguments_raise_value_error(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        zoo.export_onnx(build_small("mlp"), tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_model_and_path_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="model=Linear"):
        zoo.export_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="meta device"):
        zoo.export_onnx(zoo.create("mlp", device="meta"), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"path=.*\.onnx"):
        zoo.export_onnx(build_small("mlp"), tmp_path / "m.txt")
    with pytest.raises(ValueError, match="does not exist"):
        zoo.export_onnx(build_small("mlp"), tmp_path / "missing" / "m.onnx")


def test_read_metadata_rejects_foreign_files(tmp_path):
    with pytest.raises(zoo.ModelFileError, match="no such file"):
        read_onnx_metadata(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    with pytest.raises(zoo.ModelFileError):
        read_onnx_metadata(junk)


# --- `zoo export` ----------------------------------------------------------------------------

def test_cli_exports_a_registry_name_with_overrides(tmp_path, capsys):
    from zoo.factory.cli import main

    out = tmp_path / "m.onnx"
    rc = main(["export", "mlp", "--out", str(out), "--num-classes", "3", "--arg", "hidden=32",
               "--arg", "norm=layernorm", "--arg", "width_mult=0.5", "--opset", "19"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    config = read_onnx_metadata(out)["config"]
    assert (config["num_classes"], config["hidden"], config["norm"], config["width_mult"]) == \
        (3, 32, "layernorm", 0.5)


def test_cli_exports_a_saved_file(tmp_path):
    from zoo.factory.cli import main

    model = build_small("mlp").eval()
    zoo.save(model, tmp_path / "m.safetensors")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "m.safetensors"), "--out", str(out), "--static-batch",
                 "--batch-size", "2"]) == 0
    x = model.example_inputs(batch_size=2)[0]
    with torch.no_grad():
        assert _rel_err(_session(out).run(None, {"x": x.numpy()})[0], model(x).numpy()) <= RTOL


@pytest.mark.parametrize("argv, message", [
    (["export", "resnt18"], "did you mean resnet18"),
    (["export", "mlp", "--arg", "hidden"], "expected KEY=VALUE"),
    (["export", "mlp", "--arg", "bogus=1"], "'bogus' not accepted"),
    (["export", "mlp", "--img-size", "32"], "'img_size' not accepted"),
    (["export", "missing.safetensors"], "no such file"),
])
def test_cli_errors_are_clear(argv, message, tmp_path, capsys):
    from zoo.factory.cli import main

    assert main(argv + ["--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo export: error:") and message in err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_refuses_overrides_for_a_saved_file(tmp_path, capsys):
    from zoo.factory.cli import main

    zoo.save(build_small("mlp"), tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.onnx"),
                 "--num-classes", "3"]) == 2
    assert "cannot be changed for a saved model" in capsys.readouterr().err


SMALL_STEM_MODELS = ["resnet18", "resnet50", "seresnet18", "mobilenetv2", "inception"]


@pytest.mark.parametrize("name", SMALL_STEM_MODELS)
def test_small_stem_onnx_runtime_equals_pytorch(name, tmp_path):
    model = build_small(name, stem="small", img_size=32)
    _randomise_norm_stats(model)
    model.eval()
    path = zoo.export_onnx(model, tmp_path / f"{name}.onnx")
    assert read_onnx_metadata(path)["config"]["stem"] == "small"
    sess = _session(path)
    for batch in (1, 4):
        (x,) = model.example_inputs(batch_size=batch)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == want.shape
        err = _rel_err(got, want)
        assert err <= RTOL, f"{name} stem='small': ONNX Runtime vs PyTorch relative error {err:.2e}"
