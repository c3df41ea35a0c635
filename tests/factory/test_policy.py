"""The policy table: examples as data, capacity caps, search bounds and scaling paths."""
from __future__ import annotations

import pytest

import zoo
from zoo.factory import policy


def families(kind, n, **kw):
    return policy.allowed_candidates(kind, n_samples=n, **kw)[0]


def test_every_family_is_a_registered_model_of_the_right_kind():
    for fam in policy.CANDIDATES.values():
        entry = zoo.get_entry(fam.registry)
        assert fam.reason
        for bounds in (fam.width, fam.depth):
            assert bounds is None or 0 < bounds[0] <= bounds[1]
    for rule in policy.RULES:
        assert rule.reason and rule.candidates
        for key in rule.candidates:
            assert zoo.get_entry(policy.CANDIDATES[key].registry).input_kind == rule.input_kind


def test_tabular_linear_under_1000_samples_mlp_above():
    assert families("tabular", 300) == ["linear"]
    assert families("tabular", 60_000) == ["mlp", "linear"]


def test_images_resnet_first_mobilenet_as_fallback_bottleneck_for_large_data_and_inputs():
    assert families("image", 50_000, img_size=32, latency_ms=30) == ["resnet18", "mobilenetv2"]
    assert families("image", 1_000_000, img_size=224, latency_ms=8) == \
        ["resnet50", "resnet18", "mobilenetv2"]
    assert families("image", 1_000_000, img_size=32, latency_ms=8) == ["resnet18", "mobilenetv2"]
    # SE where it is cheap: no latency budget to pay its CPU cost from
    assert "seresnet18" in families("image", 50_000, img_size=32, latency_ms=None)
    assert "inception" not in families("image", 1_000_000, img_size=224, latency_ms=None)


def test_sequences_lstm_short_transformer_long_never_on_small_data():
    assert families("sequence", 20_000, seq_len=30) == ["lstm"]
    assert families("sequence", 500_000, seq_len=2000) == ["transformer", "lstm"]
    assert families("sequence", 9_999, seq_len=2000) == ["lstm"]


def test_graphs_gcn_with_two_or_three_layers():
    assert families("graph", 20_000) == ["gcn"]
    gcn = policy.CANDIDATES["gcn"]
    layers = {zoo.scale_depth(2, d) for d in (gcn.depth[0], gcn.depth[1])}
    assert layers == {2, 3}


def test_mlp_stays_at_four_hidden_layers_or_fewer():
    mlp = policy.CANDIDATES["mlp"]
    assert zoo.scale_depth(zoo.get_entry("mlp").defaults["depth"], mlp.depth[1]) <= 4


@pytest.mark.parametrize("kind", sorted(policy.CAPACITY))
def test_capacity_cap_is_monotone(kind):
    caps = [policy.capacity_cap(kind, n) for n in (100, 1_000, 10_000, 100_000, 1_000_000)]
    assert caps == sorted(caps) and caps[0] < caps[-1]


def test_image_cap_passes_through_its_anchors():
    assert policy.capacity_cap("image", 50_000) == pytest.approx(11.7e6, rel=1e-6)
    assert policy.capacity_cap("image", 1_200_000) == pytest.approx(25.6e6, rel=1e-6)
    assert policy.CAPACITY["image"].exponent == pytest.approx(0.246, abs=0.002)


def test_family_sets_only_grow_with_data_and_looser_latency():
    """Half of build's monotonicity: more data or a looser budget never removes a family."""
    for kind, extra in (("tabular", {}), ("image", {"img_size": 224}), ("sequence", {"seq_len": 500}),
                        ("graph", {})):
        prev: set = set()
        for n in (10, 999, 1_000, 9_999, 10_000, 499_999, 500_000, 10**7):
            for lat in (5.0, None):
                now = set(families(kind, n, latency_ms=lat, **extra))
                assert prev <= now, (kind, n, prev - now)
            prev = set(families(kind, n, latency_ms=5.0, **extra))


@pytest.mark.parametrize("key", sorted(policy.CANDIDATES))
def test_scaling_path_is_balanced_monotone_and_within_bounds(key):
    fam = policy.CANDIDATES[key]
    path = policy.scaling_path(fam)
    ws, ds = [w for w, _ in path], [d for _, d in path]
    assert ws == sorted(ws) and ds == sorted(ds)  # width and depth grow together
    if fam.width:
        assert fam.width[0] <= ws[0] and ws[-1] <= fam.width[1]
        assert (ws[0], ws[-1]) == pytest.approx(fam.width, abs=1e-3)
    if fam.depth:
        assert fam.depth[0] <= ds[0] and ds[-1] <= fam.depth[1]
    if fam.width and fam.depth and fam.width[0] <= 1 <= fam.width[1] and fam.depth[0] <= 1 <= fam.depth[1]:
        assert (1.0, 1.0) in path  # the compound path passes through the reference model


def test_policy_table_reads_on_its_own():
    text = policy.policy_table()
    for rule in policy.RULES:
        assert rule.name in text and rule.reason in text
    assert "cap(n) = A n^b" in text
