"""The policy table: examples as data, capacity caps, search bounds and scaling paths."""
from __future__ import annotations

import pytest

import zoo
from zoo.factory import policy


def families(kind, n, **kw):
    return policy.allowed_candidates(kind, n_samples=n, **kw)[0]


def test_every_family_is_a_registered_model_of_the_right_kind():
    for fam in policy.CANDIDATES.values():
        zoo.get_entry(fam.registry)
        assert fam.reason
        for bounds in (fam.width, fam.depth):
            assert bounds is None or 0 < bounds[0] <= bounds[1]
    for rule in policy.RULES:
        assert rule.reason and rule.candidates
        for key in rule.candidates:
            cand = policy.CANDIDATES[key]
            kind = zoo.get_entry(cand.registry).input_kind
            # flat candidates: a tabular model over the flattened image / series
            assert kind == rule.input_kind or (cand.flat and kind == "tabular"
                                               and rule.input_kind in ("image", "sequence"))


def test_tabular_linear_below_the_fitted_mlp_threshold_mlp_from_it():
    t = policy.TABULAR_MLP_MIN_SAMPLES
    assert families("tabular", max(1, t - 1)) == ["linear"]
    assert families("tabular", t) == ["mlp", "linear"]


def test_small_images_flat_mlp_always_small_stem_convs_from_the_fitted_size():
    small = families("image", 10, img_size=8)
    assert "mlp-flat" in small and "linear-flat" in small
    assert not {"resnet18", "mobilenetv2", "resnet18-small"} & set(small)
    side, n = policy.SMALL_STEM_MAX_SIDE, policy.IMAGE_CONV_MIN_SAMPLES
    if side >= 8 and n <= policy.IMAGE_EVIDENCE_N:
        assert "resnet18-small" in families("image", n, img_size=side)
        assert "resnet18-small" not in families("image", n - 1, img_size=side)
    # within the evidence, every conv candidate is a narrow or small-stem one
    for key in families("image", policy.IMAGE_EVIDENCE_N, img_size=policy.SMALL_IMAGE):
        assert policy.CANDIDATES[key].flat or key.endswith(("-small", "-narrow"))


def test_beyond_the_evidence_the_seeds_image_rules_hold():
    beyond = families("image", policy.IMAGE_EVIDENCE_N + 1, img_size=32, latency_ms=30)
    assert beyond == ["resnet18", "mobilenetv2"]


def test_large_images_keep_the_imagenet_stem_rules():
    assert families("image", 50_000, img_size=224, latency_ms=30) == ["resnet18", "mobilenetv2"]
    assert families("image", 1_000_000, img_size=224, latency_ms=8) == \
        ["resnet50", "resnet18", "mobilenetv2"]
    assert "seresnet18" in families("image", 50_000, img_size=224, latency_ms=None)
    assert "inception" not in families("image", 1_000_000, img_size=224, latency_ms=None)


def test_sequences_flat_mlp_always_lstm_short_only_transformer_never_on_small_data():
    assert {"mlp-flat", "linear-flat"} <= set(families("sequence", 10, seq_len=150))
    for n in (10, policy.SEQ_EVIDENCE_N, 10 ** 6):
        assert not {"lstm", "lstm-narrow"} & set(
            families("sequence", n, seq_len=policy.LONG_SEQUENCE))
    if policy.SEQ_LSTM_MIN_SAMPLES <= policy.SEQ_EVIDENCE_N:  # within the evidence: measured widths
        assert "lstm-narrow" in families("sequence", policy.SEQ_LSTM_MIN_SAMPLES, seq_len=24)
    assert "lstm" in families("sequence", policy.SEQ_EVIDENCE_N + 1, seq_len=24)  # beyond: the seed
    assert "transformer" in families("sequence", 500_000, seq_len=2000)
    assert "transformer" not in families("sequence", 9_999, seq_len=2000)
    assert "tcn" in families("sequence", policy.SEQ_TCN_MIN_SAMPLES, seq_len=150)


def test_graphs_gcn_with_two_or_three_layers():
    # within learn.json's sizes the 2-layer GCN it measured, scaled in width; beyond, the seed's
    # 2-3 layers join
    assert families("graph", policy.GRAPH_EVIDENCE_N) == ["gcn-2"]
    assert families("graph", 20_000) == ["gcn-2", "gcn"]
    assert policy.CANDIDATES["gcn-2"].depth is None
    gcn = policy.CANDIDATES["gcn"]
    layers = {zoo.scale_depth(2, d) for d in (gcn.depth[0], gcn.depth[1])}
    assert layers == {2, 3}


def test_mlp_stays_at_four_hidden_layers_or_fewer():
    for key in ("mlp", "mlp-flat"):
        mlp = policy.CANDIDATES[key]
        top = mlp.depth[1] if mlp.depth else 1.0
        assert zoo.scale_depth(zoo.get_entry("mlp").defaults["depth"], top) <= 4


@pytest.mark.parametrize("kind", sorted(policy.CAPACITY))
def test_capacity_cap_is_monotone(kind):
    ns = sorted({1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, policy.CAPACITY[kind].n_max,
                 policy.CAPACITY[kind].n_max + 1})
    caps = [policy.capacity_cap(kind, n) for n in ns]
    assert caps == sorted(caps) and caps[0] < caps[-1]


@pytest.mark.parametrize("kind", sorted(policy.CAPACITY))
def test_capacity_is_fitted_within_the_evidence_and_the_anchors_beyond(kind):
    rule = policy.CAPACITY[kind]
    (n1, p1), (n2, p2) = rule.anchors
    assert rule.anchor_cap(n1) == pytest.approx(p1, abs=1)
    assert rule.anchor_cap(n2) == pytest.approx(p2, abs=1)
    if rule.at_n_max is None:
        assert rule.cap(n1) == rule.anchor_cap(n1)
        return
    for n in (1, max(1, rule.n_max // 2), rule.n_max):
        assert rule.cap(n) == int(rule.at_n_max * (n / rule.n_max) ** rule.fitted_exponent)
    for n in (rule.n_max + 1, rule.n_max * 10, 10 ** 8):
        assert rule.cap(n) == int(max(rule.at_n_max, rule.anchor_cap(n)))


def test_fitted_constants_cite_their_rows():
    for rule in policy.RULES:
        if "min_samples" in rule.when and rule.when["min_samples"] not in (
                policy.LARGE_IMAGE_DATA, policy.TRANSFORMER_MIN_SAMPLES):
            assert "learn.json" in rule.reason
    for c in policy.CAPACITY.values():
        assert c.at_n_max is None or "learn.json" in c.evidence


def test_family_sets_only_grow_with_data_and_looser_latency():
    """Half of build's monotonicity: more data or a looser budget never removes a family -- except
    the flat MLP, which the temporal CNN replaces once it joins on series of <= TCN_MAX_LEN steps
    (the evidence's choice; a different family, as issue 10 allows, and the linear baseline stays)."""
    for kind, extra in (("tabular", {}), ("image", {"img_size": 224}), ("sequence", {"seq_len": 500}),
                        ("sequence", {"seq_len": policy.TCN_MAX_LEN + 1}), ("graph", {})):
        prev: set = set()
        for n in (10, 999, 1_000, 9_999, 10_000, 499_999, 500_000, 10**7):
            for lat in (5.0, None):
                now = set(families(kind, n, latency_ms=lat, **extra))
                replaced = ({"mlp-flat"} if "tcn" in now and extra.get("seq_len", 0) <= policy.TCN_MAX_LEN
                            else set())
                now -= set(policy.fallbacks(policy.allowed_candidates(
                    kind, n_samples=n, latency_ms=lat, **extra)[1], list(now)))
                assert prev - replaced <= now, (kind, n, prev - now)
                assert "linear-flat" in now or kind != "sequence"
            prev = set(families(kind, n, latency_ms=5.0, **extra))
    assert "mlp-flat" in families("sequence", 10**5, seq_len=policy.TCN_MAX_LEN + 1)
    # where the CNN replaced it, the flat MLP stays only as its stand-in under a training budget
    keys, fired = policy.allowed_candidates("sequence", n_samples=10**5, seq_len=policy.TCN_MAX_LEN)
    assert policy.fallbacks(fired, keys) == {"mlp-flat": "tcn"}
    keys, fired = policy.allowed_candidates("sequence", n_samples=10**5,
                                            seq_len=policy.TCN_MAX_LEN + 1)
    assert policy.fallbacks(fired, keys) == {}  # a plain candidate there


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
    assert "cap(n) = C (n / n_max)^b" in text
