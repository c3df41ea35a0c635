"""``zoo.model_from``: a registry name or a saved file, with overrides -> a model."""
from __future__ import annotations

import pytest

import zoo
from zoo.resolve import parse_overrides


def test_a_registry_name_with_overrides_is_created():
    model = zoo.model_from("mlp", in_features=7, num_classes=3, hidden=32)
    assert model.config == zoo.create("mlp", in_features=7, num_classes=3, hidden=32).config


def test_a_saved_file_is_loaded_by_path_or_string(tmp_path):
    saved = zoo.create("linear", in_features=5, num_classes=2)
    path = zoo.save(saved, tmp_path / "m.safetensors")
    for source in (path, str(path)):
        loaded = zoo.model_from(source)
        assert loaded.config == saved.config
        assert all((a == b).all() for a, b in zip(loaded.state_dict().values(),
                                                  saved.state_dict().values()))


def test_overrides_of_a_saved_file_are_refused(tmp_path):
    path = zoo.save(zoo.create("linear"), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="num_classes cannot be changed for a saved model"):
        zoo.model_from(path, num_classes=3)


@pytest.mark.parametrize("source,pattern", [
    ("resnt18", r"did you mean resnet18"),
    ("", r"name_or_file='' is not accepted"),
    (3, r"name_or_file=3 is not accepted"),
    (["mlp"], r"name_or_file=\['mlp'\] is not accepted"),
])
def test_bad_sources_are_named(source, pattern):
    with pytest.raises(ValueError, match=pattern):
        zoo.model_from(source)


def test_a_missing_safetensors_file_is_a_model_file_error(tmp_path):
    with pytest.raises(zoo.ModelFileError):
        zoo.model_from(str(tmp_path / "missing.safetensors"))


def test_overrides_parse_json_and_python_literals():
    assert parse_overrides(["a=3", "b=0.5", "c=true", "d=None", "e=[1, 2]", "f=layernorm"]) == \
        {"a": 3, "b": 0.5, "c": True, "d": None, "e": [1, 2], "f": "layernorm"}
    with pytest.raises(ValueError, match=r"--arg 'hidden' is not accepted: expected KEY=VALUE"):
        parse_overrides(["hidden"])
