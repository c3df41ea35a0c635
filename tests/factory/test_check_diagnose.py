"""Fit diagnosis from learning curves (synthetic and real ``zoo.fit`` runs on sklearn's digits) and
the one-batch overfit check (the zoo's models fit one batch; deliberate bugs do not)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.factory.diagnose import REMEDIES, diagnose_history, overfit_batch
from zoo.history import History


def rows(train_acc, val_acc, train_loss, val_loss):
    return [{"epoch": k + 1, "train_loss": tl, "train_metric": ta, "val_loss": vl,
             "val_metric": va, "seconds": float(k), "lr": 1e-3}
            for k, (ta, va, tl, vl) in enumerate(zip(train_acc, val_acc, train_loss, val_loss))]


SYNTHETIC = {
    # The seed's examples: 99 % vs 70 % overfits; 60 % vs 58 % underfits; constant loss.
    "overfitting": rows([0.6, 0.85, 0.95, 0.99], [0.58, 0.7, 0.71, 0.70],
                        [1.5, 0.6, 0.2, 0.05], [1.6, 1.0, 1.1, 1.3]),
    "underfitting": rows([0.40, 0.52, 0.58, 0.60], [0.39, 0.50, 0.57, 0.58],
                         [2.0, 1.6, 1.4, 1.3], [2.0, 1.6, 1.45, 1.35]),
    "not-learning": rows([0.10, 0.11, 0.10, 0.10], [0.10, 0.10, 0.11, 0.10],
                         [2.303, 2.302, 2.303, 2.301], [2.303, 2.303, 2.302, 2.303]),
    "healthy": rows([0.7, 0.9, 0.96, 0.97], [0.68, 0.88, 0.94, 0.95],
                    [1.0, 0.4, 0.15, 0.1], [1.0, 0.45, 0.2, 0.17]),
}


@pytest.mark.parametrize("case", list(SYNTHETIC))
def test_synthetic_histories_in_every_form(case, tmp_path):
    history = History(task="classification", metric="accuracy", epochs=SYNTHETIC[case])
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(history.to_dict()))
    plain = {"train": [r["train_metric"] for r in history.epochs],
             "val": [r["val_metric"] for r in history.epochs],
             "train_loss": [r["train_loss"] for r in history.epochs]}
    for form in (history, history.to_dict(), str(path), plain):
        finding = diagnose_history(form)
        assert finding.data["case"] == case, (form, finding.fact)
        assert finding.remedies == list(REMEDIES.get(case, ()))
        assert finding.status == {"healthy": "pass", "not-learning": "fail"}.get(case, "warn")


def test_remedies_follow_the_seeds_order():
    fix = diagnose_history({"epochs": SYNTHETIC["overfitting"]})
    assert fix.remedies[0].startswith("reduce capacity") and fix.remedies[-1] == "collect more data"
    under = diagnose_history({"epochs": SYNTHETIC["underfitting"]}).remedies
    assert under[0].startswith("train longer") and "learning rate" in under[-1]
    flat = diagnose_history({"epochs": SYNTHETIC["not-learning"]}).remedies
    assert flat[0].startswith("add skip connections") and "preprocessing" in flat[-1]


def test_gap_threshold_is_the_seeds_five_points():
    just = diagnose_history({"train": [0.5, 0.90], "val": [0.5, 0.86]})
    over = diagnose_history({"train": [0.5, 0.97], "val": [0.5, 0.91]})
    assert just.data["case"] == "healthy" and over.data["case"] == "overfitting"
    # The target decides "both low": the same curves underfit against a higher one.
    assert diagnose_history({"train": [0.5, 0.90], "val": [0.5, 0.86]},
                            target=0.95).data["case"] == "underfitting"


def test_losses_only():
    rising = {"train": [2.0, 1.0, 0.5, 0.2, 0.1], "val": [2.0, 1.2, 1.0, 1.2, 1.5],
              "metric": "loss"}
    assert diagnose_history(rising).data["case"] == "overfitting"
    flat = {"train_loss": [1.0, 0.999, 0.998], "val_loss": [1.0, 1.0, 1.0]}
    assert diagnose_history(flat).data["case"] == "not-learning"
    falling = {"train": [2.0, 1.0, 0.5], "val": [2.1, 1.1, 0.6], "metric": "loss"}
    finding = diagnose_history(falling)
    assert finding.data["case"] == "healthy" and "not judged" in finding.fact


def test_bad_histories_raise_value_error():
    for bad in (3, {"train": [1, 2], "val": [1]}, {"other": [1, 2]}, {"train": "abc"},
                {"train": [0.1, float("nan")]}, {"epochs": [1, 2]}, "/nonexistent/curves.json"):
        with pytest.raises(ValueError, match="history"):
            diagnose_history(bad)
    assert diagnose_history({"train": [0.5]}).status == "skip"  # one epoch says nothing


# --- real curves: zoo.fit on sklearn's digits ----------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm], y[perm]


def mlp(hidden: int = 64):
    return zoo.create("mlp", in_features=64, num_classes=10, hidden=hidden)


@pytest.mark.parametrize("case,train_n,kwargs", [
    ("healthy", 1200, {"model": 64, "epochs": 6, "lr": 1e-2}),
    ("overfitting", 60, {"model": 256, "epochs": 25}),        # 60 images, 84k parameters
    ("underfitting", 1200, {"model": 64, "epochs": 2, "lr": 1e-3}),   # stopped too early
    ("not-learning", 1200, {"model": 64, "epochs": 3, "lr": 1e-7}),   # a learning rate of ~0
])
def test_real_zoo_fit_histories(digits, case, train_n, kwargs):
    x, y = digits
    model = mlp(kwargs.pop("model"))
    history = zoo.fit(model, (x[:train_n], y[:train_n]), (x[1200:], y[1200:]), progress=False,
                      **kwargs)
    finding = zoo.check(model, task="tabular-classification", n_samples=train_n,
                        history=history).finding("fit")
    assert finding.data["case"] == case, finding.fact


# --- the one-batch overfit check -----------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs,batch", [
    ("mlp", {"num_classes": 3}, 8),
    ("lstm", {"num_classes": 3, "seq_len": 8}, 8),
    ("transformer", {"num_classes": 3, "seq_len": 8, "d_model": 32, "depth": 2}, 8),
    ("gcn", {"num_classes": 4}, 1),  # one graph of 64 nodes is the batch
    ("resnet18", {"num_classes": 10, "img_size": 16, "width_mult": 0.25}, 8),
    ("mobilenetv2", {"num_classes": 10, "img_size": 16, "width_mult": 0.35}, 8),
])
def test_zoo_models_fit_one_batch(name, kwargs, batch):
    model = zoo.create(name, **kwargs)
    finding = overfit_batch(model, tuple(model.example_inputs(batch)))
    assert finding.status == "pass", finding.fact
    assert finding.data["last_loss"] <= 0.02 * finding.data["first_loss"]
    assert finding.data["steps"] <= 200 and finding.data["optimizer"] == "Adam"


class Detached(nn.Module):
    """The bug: the body's features are detached, so only a 2 -> 10 head can learn."""

    def __init__(self, bug: bool = True):
        super().__init__()
        self.bug = bug
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
        self.head = nn.Linear(2, 10)

    def forward(self, x):
        features = self.body(x)
        return self.head(features.detach() if self.bug else features)


def test_deliberate_bugs_fail_the_one_batch_check():
    x = (torch.randn(8, 16, generator=torch.Generator().manual_seed(1)),)
    detached = overfit_batch(Detached(), x)
    assert detached.status == "fail" and "a bug before any tuning" in detached.fact
    assert detached.data["steps"] == 200
    # The same model without the detach fits the batch.
    assert overfit_batch(Detached(bug=False), x).status == "pass"
    zero_lr = overfit_batch(zoo.create("mlp", num_classes=3), x, lr=0.0)
    assert zero_lr.status == "fail"
    assert zero_lr.data["last_loss"] == pytest.approx(zero_lr.data["first_loss"])


def test_check_runs_the_one_batch_check_and_leaves_the_model_alone():
    model = zoo.create("mlp", num_classes=3, hidden=32)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    report = zoo.check(model, task="tabular-classification", overfit_batch=True)
    assert report.finding("overfit-batch").status == "pass"
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())
    with pytest.raises(ValueError, match="overfit_lr=-1"):
        zoo.check(model, overfit_batch=True, overfit_lr=-1)
