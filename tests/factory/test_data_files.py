"""zoo build --data FILE: shapes, sizes and classes read from the data; --train writes the curve."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.factory import cli
from zoo.factory.data_files import infer


def _iris(tmp_path):
    from sklearn.datasets import load_iris

    d = load_iris()
    path = tmp_path / "iris.npz"
    np.savez(path, X=d.data.astype(np.float32), y=d.target)
    return path


def test_npz_tabular_image_and_graph_give_n_shape_and_classes(tmp_path):
    data = infer(_iris(tmp_path), "tabular-classification")
    assert (data.n_samples, data.input_shape, data.num_classes) == (150, (4,), 3)
    img = tmp_path / "img.npz"
    np.savez(img, X=np.zeros((20, 1, 8, 8), np.float32), y=np.arange(20) % 4)
    data = infer(img, "image-classification")
    assert (data.n_samples, data.input_shape, data.num_classes) == (20, (1, 8, 8), 4)
    g = tmp_path / "g.npz"
    mask = np.zeros(10, bool)
    mask[:6] = True
    np.savez(g, x=np.ones((10, 3), np.float32), edge_index=np.array([[0, 1], [1, 0]]),
             y=np.arange(10) % 2, train_mask=mask)
    data = infer(g, "node-classification")
    assert (data.n_samples, data.input_shape, data.num_classes, data.n_edges) == (6, (10, 3), 2, 2)


def test_csv_with_a_target_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n")
    data = infer(path, "tabular-classification", target="label")
    assert (data.n_samples, data.input_shape, data.num_classes) == (4, (2,), 3)
    assert infer(path, "tabular-regression", target="b").num_classes is None
    with pytest.raises(ValueError, match="target='nope'"):
        infer(path, "tabular-classification", target="nope")


@pytest.mark.parametrize("arrays,task,match", [
    ({"X": np.zeros((5, 4), np.float32), "y": np.zeros(5)}, "image-classification", "rank 4"),
    ({"X": np.zeros((5, 4), np.float32), "y": np.array([0, 1, 2, 0.5, 1])},
     "tabular-classification", "integer class labels"),
    ({"X": np.zeros((5, 4), np.float32)}, "tabular-classification", "arrays X and y"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, arrays, task, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        infer(path, task)


def test_build_data_train_writes_weights_spec_and_learning_curve(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["build", "tabular-classification", "--vram-gb", "none", "--latency-ms", "none",
                   "--data", str(_iris(tmp_path)), "--train", "--epochs", "30", "--out", str(out),
                   "--quiet"])
    assert rc == 0
    for name in ("model.safetensors", "model.onnx", "spec.json", "history.json", "curve.png"):
        assert (out / name).stat().st_size > 0
    spec = json.loads((out / "spec.json").read_text())
    assert spec["budgets"]["n_samples"] == 150 and spec["budgets"]["input_shape"] == [4]
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) <= 30
    best = max(e["val_metric"] for e in history["epochs"])
    assert best > 0.8  # iris is learnt (3 classes: chance is 1/3)


def test_train_without_data_is_refused(capsys):
    rc = cli.main(["build", "tabular-classification", "--n-samples", "100", "--vram-gb", "none",
                   "--latency-ms", "none", "--input-shape", "4", "--num-classes", "3", "--train"])
    assert rc == 2 and "--data" in capsys.readouterr().err
