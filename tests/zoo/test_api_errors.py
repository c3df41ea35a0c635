"""The facade's error messages and file safety."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import zoo
from tests.conftest import build_small


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"name='mpl'.*did you mean mlp"):
        zoo.create("mpl")


def test_unknown_argument_lists_accepted():
    with pytest.raises(ValueError, match=r"'widht_mult'.*accepted:.*width_mult"):
        zoo.create("mlp", widht_mult=2.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "2"])
def test_bad_multiplier_is_named(bad):
    with pytest.raises(ValueError, match=r"width_mult="):
        zoo.create("mlp", width_mult=bad)


def test_list_models_pattern():
    assert zoo.list_models("ml*") == ["mlp"]


def test_duplicate_registration_refused():
    def mlp(*, num_classes=1, width_mult=1.0, depth_mult=1.0, device=None, dtype=None):
        raise AssertionError("never built")
    with pytest.raises(ValueError, match="'mlp' is already registered"):
        zoo.register_model(family="mlp", input_kind="tabular")(mlp)


def test_load_truncated_file_names_it(tmp_path):
    path = tmp_path / "m.safetensors"
    zoo.save(build_small("mlp"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(zoo.ModelFileError, match=str(path).replace(".", r"\.")):
        zoo.load(path)


def test_load_garbage_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        zoo.load(path)


def test_load_weights_not_matching_config(tmp_path):
    model = build_small("mlp")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = dict(model.config, hidden=128)  # config says a narrower MLP than the weights hold
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata={"zoo.format": "1", "zoo.config": json.dumps(config)})
    with pytest.raises(zoo.ModelFileError, match=r"do not match the config.*mismatch"):
        zoo.load(path)


def test_load_missing_tensor(tmp_path):
    model = build_small("mlp")
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("head")}
    path = tmp_path / "m.safetensors"
    save_file(state, str(path), metadata={"zoo.format": "1", "zoo.config": json.dumps(model.config)})
    with pytest.raises(zoo.ModelFileError, match="missing"):
        zoo.load(path)


def test_failed_save_keeps_good_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    model = build_small("mlp")
    zoo.save(model, path)
    good = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr("zoo.io.save_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        zoo.save(model, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_save_to_missing_folder_is_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        zoo.save(build_small("mlp"), tmp_path / "nope" / "m.safetensors")


def test_saved_file_has_normal_permissions(tmp_path):
    import os
    path = tmp_path / "m.safetensors"
    zoo.save(build_small("mlp"), path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
