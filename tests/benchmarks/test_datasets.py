"""The offline data sets of zoo-bench learn: documented shapes and dtypes, deterministic splits,
seeded subsamples, and the coverage issue 10 asks for (every kind, two image sizes, held-out sets)."""
from __future__ import annotations

import numpy as np
import pytest

from zoo.benchmarks import datasets as D

NAMES = list(D.DATASETS)


@pytest.mark.parametrize("name", NAMES)
def test_loader_returns_documented_shapes_and_dtypes(name):
    info = D.DATASETS[name]
    data = D.load(name)
    if info.kind == "graph":
        assert isinstance(data, D.GraphSplit)
        v = len(data.y)
        assert data.x.dtype == np.float32 and data.x.shape == (v,) + info.input_shape
        assert data.edge_index.dtype == np.int64 and data.edge_index.shape[0] == 2
        assert data.edge_index.min() >= 0 and data.edge_index.max() < v
        pairs = set(map(tuple, data.edge_index.T.tolist()))
        assert all((b, a) in pairs for a, b in pairs), "edges are stored in both directions"
        assert data.y.dtype == np.int64 and set(np.unique(data.y)) == set(range(info.num_classes))
        assert data.train_mask.dtype == bool and data.test_mask.dtype == bool
        assert not (data.train_mask & data.test_mask).any() and (data.train_mask | data.test_mask).all()
        assert (int(data.train_mask.sum()), int(data.test_mask.sum())) == (info.n_train, info.n_test)
        assert set(np.unique(data.y[data.train_mask])) == set(range(info.num_classes))
        return
    assert isinstance(data, D.ArraySplit)
    assert data.X_train.shape == (info.n_train,) + info.input_shape
    assert data.X_test.shape == (info.n_test,) + info.input_shape
    assert data.X_train.dtype == np.float32 and data.X_test.dtype == np.float32
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
    assert data.y_train.shape == (info.n_train,) and data.y_test.shape == (info.n_test,)
    if info.task == "classification":
        assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
        assert set(np.unique(data.y_train)) == set(range(info.num_classes))
        assert data.y_test.min() >= 0 and data.y_test.max() < info.num_classes
        assert len(data.classes) == info.num_classes
    else:
        assert info.num_classes == 1 and data.classes is None
        assert data.y_train.dtype == np.float32 and np.isfinite(data.y_train).all()
    if info.kind == "image":
        assert data.X_train.min() >= 0 and data.X_train.max() <= 1


@pytest.mark.parametrize("name", ["digits", "diabetes", "gunpoint", "karate_club"])
def test_split_is_deterministic(name):
    loader = D.DATASETS[name].loader  # uncached: two independent reads of the bundled files
    a, b = loader(), loader()
    for field in vars(a):
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)


def test_seeded_split_is_stratified_and_disjoint():
    y = np.repeat(np.arange(3), [10, 20, 5])
    tr, te = D.stratified_split(y, 0.7, seed=3)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
    assert np.bincount(y[tr]).tolist() == [7, 14, 4]
    tr2, _ = D.stratified_split(y, 0.7, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    assert not np.array_equal(tr, D.stratified_split(y, 0.7, seed=4)[0])


def test_subsample_is_seeded_and_keeps_every_class():
    y = np.repeat(np.arange(4), [50, 30, 3, 17])
    a = D.subsample(y, 8, seed=1)
    assert len(a) == 8 and len(np.unique(a)) == 8
    assert set(y[a]) == {0, 1, 2, 3}
    np.testing.assert_array_equal(a, D.subsample(y, 8, seed=1))
    assert not np.array_equal(a, D.subsample(y, 8, seed=2))
    np.testing.assert_array_equal(D.subsample(y, len(y), seed=5), np.arange(len(y)))
    r = D.subsample(np.linspace(0, 1, 40, dtype=np.float32), 10, seed=0, classification=False)
    assert len(np.unique(r)) == 10
    with pytest.raises(ValueError, match="n=101 is not accepted"):
        D.subsample(y, 101, seed=0)


def test_train_sizes_end_at_the_train_split():
    for info in D.DATASETS.values():
        sizes = D.train_sizes(info)
        assert sizes == sorted(set(sizes)) and sizes[-1] == info.n_train
        assert all(s >= max(12, 4 * info.num_classes) for s in sizes[:-1])


def test_coverage_asked_by_issue_10():
    infos = list(D.DATASETS.values())
    assert len(infos) >= 10
    images = {i.input_shape[1:] for i in infos if i.kind == "image"}
    assert {(8, 8), (28, 28)} <= images
    kinds_tasks = {(i.kind, i.task) for i in infos}
    assert {("tabular", "classification"), ("tabular", "regression"), ("graph", "classification")} <= kinds_tasks
    assert {i.length for i in infos if i.kind == "sequence"} == {"short", "long"}
    held = [i for i in infos if i.held_out]
    assert len(held) >= 3 and {i.kind for i in held} == {"image", "tabular", "sequence", "graph"}
    assert D.list_datasets(held_out=True) == [i.name for i in held]
    assert set(D.list_datasets(kind="graph")) == {i.name for i in infos if i.kind == "graph"}


def test_every_entry_names_its_source():
    for info in D.DATASETS.values():
        d = info.to_dict()
        assert d["source"].startswith(info.package + ": ") and d["package_version"], info.name
        assert d["held_out"] is info.held_out and d["input_shape"] == list(info.input_shape)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="--datasets='nope' is not accepted"):
        D.parse_names("iris,nope")
    with pytest.raises(ValueError, match="name='nope' is not accepted"):
        D.load("nope")
    with pytest.raises(ValueError, match="kind='text' is not accepted"):
        D.list_datasets(kind="text")
    assert D.parse_names("wine, iris") == ["wine", "iris"] and D.parse_names(None) == NAMES


def test_a_missing_package_names_the_set_and_the_extra(monkeypatch, capsys, tmp_path):
    import dataclasses

    from zoo.benchmarks.cli import main

    def loader():
        import zoo_no_such_package  # noqa: F401

    monkeypatch.setitem(D.DATASETS, "iris", dataclasses.replace(D.DATASETS["iris"], loader=loader))
    D._load_cached.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match=r"data set 'iris' is read from scikit-learn's "
                                                      r"bundled files, and 'zoo_no_such_package' is "
                                                      r"not installed: install the learn extra \(pip install -e '\.\[learn\]'\) "
                                                      r"or scikit-learn"):
            D.load("iris")
        assert main(["learn", "--datasets", "iris", "--epochs", "1", "--json", str(tmp_path / "x.json")]) == 2
        assert "zoo_no_such_package' is not installed" in capsys.readouterr().err
    finally:
        D._load_cached.cache_clear()
