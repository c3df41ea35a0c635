"""zoo.compare: the linear baseline and a small MLP against the given model, the 5-point rule."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import zoo
from zoo.comparison import THRESHOLD, Comparison


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()  # see tests/zoo/test_fit.py: one thread per process here
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def _check_consistent(c: Comparison, names: list[str]) -> None:
    assert [r["name"] for r in c.rows] == names
    assert [r["role"] for r in c.rows] == ["baseline", "simple", "model"]
    for r in c.rows:
        assert r["val_metric"] == c.histories[r["name"]].best["val_metric"]
        assert r["epochs"] == len(c.histories[r["name"]].epochs)
    assert c.margin == pytest.approx(c.rows[2]["val_metric"] - max(c.rows[0]["val_metric"],
                                                                   c.rows[1]["val_metric"]))
    assert c.pays == (c.margin > THRESHOLD)


def test_compare_tabular_table_dict_plot(digits, tmp_path):
    X, y = digits
    torch.manual_seed(0)
    model = zoo.create("mlp", in_features=64, num_classes=10, hidden=256, depth=2)
    c = zoo.compare(model, (X[:900], y[:900]), 0.25, time_budget_s=1.0)
    _check_consistent(c, ["linear", "mlp", "mlp (given)"])
    assert (c.task, c.metric) == ("classification", "accuracy")
    assert [r["params"] for r in c.rows] == [64 * 10 + 10, 64 * 128 + 128 + 128 * 10 + 10,
                                             sum(p.numel() for p in model.parameters())]
    assert c.rows[0]["val_metric"] > 0.85  # digits are nearly linearly separable...
    assert not c.pays                     # ...so a bigger MLP cannot clear 5 points over them
    table = c.table()
    assert "mlp (given)" in table and "complexity pays: no" in table and "5 points" in table
    d = json.loads(json.dumps(c.to_dict()))
    assert d["pays"] is False and d["best_simple"] in ("linear", "mlp") and len(d["rows"]) == 3
    assert c.plot(tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png"]


def test_compare_flattens_images_for_the_simple_models(digits):
    X, y = digits
    images = (X / 16.0).reshape(-1, 1, 8, 8)[:400]
    torch.manual_seed(0)
    model = zoo.create("resnet18", in_chans=1, img_size=8, width_mult=0.25, num_classes=10,
                       stem="small")
    c = zoo.compare(model, (images, y[:400]), 0.25, time_budget_s=0.5)
    _check_consistent(c, ["linear", "mlp", "resnet18"])
    assert c.rows[0]["params"] == 64 * 10 + 10  # 1x8x8 pixels as 64 features


def test_graph_structure_pays_over_node_features_alone():
    nx = pytest.importorskip("networkx")
    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    edges = torch.tensor(list(g.edges())).T
    edge_index = torch.cat([edges, edges.flip(0)], 1)
    y = torch.tensor([int(g.nodes[i]["club"] != "Mr. Hi") for i in range(n)])
    train_mask = torch.zeros(n, dtype=torch.bool)
    train_mask[::2] = True
    x = torch.eye(n)  # one-hot node ids: nothing to learn about an unseen node from its own row
    torch.manual_seed(0)
    model = zoo.create("gcn", in_features=n, num_classes=2, hidden=16)
    c = zoo.compare(model, (x, edge_index, y, train_mask), ~train_mask, time_budget_s=1.0)
    _check_consistent(c, ["linear", "mlp", "gcn"])
    assert c.rows[0]["params"] == n * 2 + 2  # node features alone
    assert c.pays and "complexity pays: yes" in c.table()


def _made(simple: float, model: float) -> Comparison:
    rows = [{"name": n, "role": role, "val_metric": v, "params": 1, "seconds": 0.0, "epochs": 1,
             "stopped": "epochs"}
            for n, role, v in (("linear", "baseline", simple - 0.1), ("mlp", "simple", simple),
                               ("big", "model", model))]
    return Comparison(task="classification", metric="accuracy", rows=rows)


def test_the_rule_is_five_points_over_the_better_simple_model():
    assert not _made(0.50, 0.54).pays  # 8 % better relative, but 4 points: does not pay
    assert _made(0.50, 0.56).pays
    assert not _made(0.90, 0.94).pays
    c = _made(0.90, 0.97)
    assert c.pays and c.best_simple["name"] == "mlp" and c.margin == pytest.approx(0.07)


def test_bad_arguments(digits):
    X, y = digits
    model = zoo.create("mlp", in_features=64, num_classes=10)
    with pytest.raises(ValueError, match=r"val=None is not accepted"):
        zoo.compare(model, (X, y), None, time_budget_s=1.0)
    with pytest.raises(ValueError, match=r"time_budget_s=-1(\.0)? is not accepted"):
        zoo.compare(model, (X, y), 0.2, time_budget_s=-1)
    with pytest.raises(ValueError, match=r"model=str is not accepted"):
        zoo.compare("mlp", (X, y), 0.2, time_budget_s=1.0)
    with pytest.raises(ValueError, match=r"train=.*inputs this model takes"):
        zoo.compare(model, (X[:, :10], y), 0.2, time_budget_s=1.0)
    with pytest.raises(ValueError, match=r"path='.*cmp.txt'"):
        _made(0.5, 0.6).plot("cmp.txt")
