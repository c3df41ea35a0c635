"""Timing loop and latency measurement: sane results, isolation, no session left behind.

No test asserts a wall-clock time: only orderings (min <= median <= p90 <= max), counts, and what
was measured with.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import onnxruntime as ort
import pytest
import torch

import zoo
from zoo.factory.latency import LatencyResult, measure_eager_latency, measure_latency
from zoo.factory.timing import Timing, physical_cores, runtime_info, time_callable, time_interleaved
from tests.conftest import build_small

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _threads_of_this_process() -> int:
    return len(os.listdir("/proc/self/task"))


def _sane(r) -> None:
    assert 0 < r.min_ms <= r.median_ms <= r.p90_ms <= r.max_ms
    assert r.min_ms <= r.mean_ms <= r.max_ms


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    model = build_small("mlp").eval()
    return model, zoo.export_onnx(model, tmp_path_factory.mktemp("onnx") / "mlp.onnx")


# --- time_callable / Timing -------------------------------------------------------------------

def test_time_callable_counts_calls_and_orders_stats():
    calls = []
    t = time_callable(lambda: calls.append(1), warmup=3, runs=7)
    assert len(calls) == 10 and t.runs == 7
    _sane(t)
    assert set(t.to_dict()) == {"median_ms", "p90_ms", "min_ms", "max_ms", "mean_ms", "runs"}


def test_time_callable_min_time_extends_runs_and_sync_is_called():
    synced = []
    t = time_callable(lambda: sum(range(100)), warmup=0, runs=2, min_time_s=0.01,
                      sync=lambda: synced.append(1))
    assert t.runs > 2 and len(synced) == t.runs


def test_time_callable_max_time_cuts_a_slow_functions_warmup_and_runs():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.01)

    t = time_callable(slow, warmup=10, runs=30, max_time_s=0.05)
    assert t.runs == 10                          # at least MIN_RUNS_FOR_MAX_TIME, no more
    assert len(calls) - t.runs < 10              # warm-up stopped after ~max_time_s / 2
    fast = time_callable(lambda: None, warmup=3, runs=7, max_time_s=0.05)
    assert fast.runs == 7                        # a fast function keeps its runs


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_time_callable_refuses_a_bad_max_time(bad):
    with pytest.raises(ValueError, match="max_time_s"):
        time_callable(lambda: None, warmup=0, runs=1, max_time_s=bad)


def test_timing_from_samples_percentiles():
    t = Timing.from_samples([float(v) for v in range(1, 11)])  # 1..10 ms
    assert (t.median_ms, t.p90_ms, t.min_ms, t.max_ms, t.mean_ms, t.runs) == (5.5, 9.0, 1.0, 10.0, 5.5, 10)


@pytest.mark.parametrize("kwargs, match", [({"warmup": -1, "runs": 1}, "warmup=-1"),
                                           ({"warmup": 0, "runs": 0}, "runs=0"),
                                           ({"warmup": 0, "runs": 1, "min_time_s": -1}, "min_time_s=-1")])
def test_time_callable_rejects_bad_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_callable(lambda: None, **kwargs)


def test_runtime_info_records_device_threads_and_versions():
    info = runtime_info()
    assert info["device_type"] == "cpu" and info["device"]
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["torch_interop_threads"] == torch.get_num_interop_threads()
    assert 1 <= info["physical_cores"] <= info["available_cpus"]
    for lib in ("torch", "onnxruntime", "onnx", "timm", "torch_geometric", "python"):
        assert info["versions"][lib], lib
    json.dumps(info)
    with pytest.raises(ValueError, match="device='tpu'"):
        runtime_info("tpu")


def test_timing_module_does_not_import_torch():
    code = ("import sys, factory.timing as t; t.runtime_info(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


# --- measure_latency (ONNX Runtime) ---------------------------------------------------------

def test_isolated_latency_of_a_file(mlp_onnx):
    _, path = mlp_onnx
    before = _threads_of_this_process()
    r = measure_latency(path, runs=5, warmup=2, threads=1)
    assert isinstance(r, LatencyResult)
    _sane(r)
    assert (r.runs, r.threads, r.provider, r.isolated, r.batch_size) == (5, 1, "cpu", True, 1)
    assert r.versions["onnxruntime"] == ort.__version__ and r.versions["torch"]
    assert r.input_shapes == {"x": [1, 12]}
    assert _threads_of_this_process() == before  # nothing of ORT lives on in this process
    json.dumps(r.to_dict())


def test_in_process_latency_closes_its_session(mlp_onnx):
    _, path = mlp_onnx
    before = _threads_of_this_process()
    r = measure_latency(path, batch_size=4, runs=3, warmup=1, threads=2, isolate=False)
    _sane(r)
    assert r.input_shapes == {"x": [4, 12]} and not r.isolated and r.threads == 2
    # A live 2-thread session holds a pool thread; after measuring, none is left behind.
    assert _threads_of_this_process() == before


def test_timer_subprocess_imports_only_onnxruntime_and_numpy(mlp_onnx):
    _, path = mlp_onnx
    out = subprocess.run([sys.executable, "-m", "zoo.factory._ort_timer", str(path), "--runs", "2",
                          "--warmup", "0", "--batch-size", "3"],
                         capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    result = json.loads(out.stdout)
    assert result["torch_imported"] is False
    assert result["input_shapes"] == {"x": [3, 12]} and result["runs"] == 2


def test_latency_of_a_model_exports_it_first():
    model = build_small("mlp")
    r = measure_latency(model, runs=3, warmup=1)
    _sane(r)
    assert r.threads == physical_cores() and r.input_shapes == {"x": [1, 12]}


@pytest.mark.skipif("gcn" not in zoo.list_models(), reason="gcn not registered")
def test_graph_model_is_timed_at_its_example_size():
    model = build_small("gcn")
    x, edge_index = model.example_inputs()
    r = measure_latency(model, runs=2, warmup=1, batch_size=3)  # batch does not apply to a graph
    assert r.input_shapes == {"x": list(x.shape), "edge_index": list(edge_index.shape)}


def test_bad_arguments_raise_value_error(mlp_onnx, tmp_path):
    _, path = mlp_onnx
    with pytest.raises(ValueError, match="provider='tpu'"):
        measure_latency(path, provider="tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="provider='cuda' is not available"):
            measure_latency(path, provider="cuda")
    for kwargs, match in [({"batch_size": 0}, "batch_size=0"), ({"threads": 0}, "threads=0"),
                          ({"runs": 0}, "runs=0")]:
        with pytest.raises(ValueError, match=match):
            measure_latency(path, **kwargs)
    with pytest.raises(ValueError, match="no such file"):
        measure_latency(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="model_or_onnx_path=int"):
        measure_latency(3)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeError, match="junk.onnx"):
        measure_latency(junk, runs=1)


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="onnxruntime has no CUDAExecutionProvider here")
def test_cuda_provider_when_available(mlp_onnx):
    r = measure_latency(mlp_onnx[1], provider="cuda", runs=3, warmup=1)
    _sane(r)
    assert r.provider == "cuda"


# --- measure_eager_latency (PyTorch) -------------------------------------------------------

def test_eager_latency_restores_mode_and_threads():
    model = build_small("mlp").train()
    threads = torch.get_num_threads()
    r = measure_eager_latency(model, model.example_inputs(batch_size=2), warmup=1, runs=4, threads=1)
    _sane(r)
    assert (r.runs, r.threads, r.provider, r.batch_size) == (4, 1, "torch-eager-cpu", 2)
    assert r.input_shapes == {"x": [2, 12]}
    assert model.training and torch.get_num_threads() == threads


def test_eager_latency_rejects_bad_inputs():
    model = build_small("mlp")
    with pytest.raises(ValueError, match="inputs"):
        measure_eager_latency(model, (), runs=1)
    with pytest.raises(ValueError, match="model=str"):
        measure_eager_latency("mlp", model.example_inputs(), runs=1)


def test_time_interleaved_alternates_and_summarises_each():
    order = []
    res = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                           warmup=1, runs=4)
    assert order == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert set(res) == {"a", "b"} and res["a"].runs == res["b"].runs == 4
    with pytest.raises(ValueError, match="fns="):
        time_interleaved({}, warmup=0, runs=1)


@pytest.mark.skipif("lstm" not in zoo.list_models(), reason="lstm not registered")
def test_token_id_model_is_fed_valid_ids(tmp_path):
    model = build_small("lstm", vocab_size=20)
    path = zoo.export_onnx(model, tmp_path / "lstm.onnx")
    # Out-of-range ids would make ONNX Runtime's Gather fail; a batch not seen at export works.
    r = measure_latency(path, batch_size=3, runs=2, warmup=0, isolate=False)
    assert r.input_shapes == {"x": [3, model.seq_len]}
