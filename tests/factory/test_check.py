"""``zoo.check`` on hand-written models: a positive and a negative case for every structural rule,
the zoo's own models clean, and bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.factory.check import check

IMAGE = "image-classification"


def statuses(report) -> dict[str, str]:
    return {f.rule: f.status for f in report.findings}


def conv_stack(depth: int, channels: int = 16, *, residual: bool = False) -> nn.Module:
    """``depth`` 3x3 convs + ReLU (in residual pairs when ``residual``), mean pool, a Linear."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, channels, 3, padding=1)
            self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1)
                                       for _ in range(depth - 1))
            self.fc = nn.Linear(channels, 10)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            for k, conv in enumerate(self.convs):
                y = torch.relu(conv(x))
                x = x + y if residual else y
            return self.fc(x.mean((2, 3)))

    return Net()


def mlp(depth: int, width: int, in_features: int = 16, out: int = 10) -> nn.Module:
    layers = [nn.Linear(in_features, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, out))


class PixelMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.ReLU(),
                                 nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


class TinyViT(nn.Module):
    """Patches of 4x4 pixels -> tokens -> two encoder layers -> mean -> classes."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Linear(3 * 16, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 10)

    def forward(self, x):  # (B, 3, 8, 8)
        b = x.shape[0]
        patches = x.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(b, 4, 48)
        return self.head(self.encoder(self.patch(patches)).mean(1))


class FeatureConv(nn.Module):
    """1-D convolutions sliding over tabular features, as if they were a signal."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 8, 3))
        self.fc = nn.Linear(8, 1)

    def forward(self, x):  # (B, F)
        return self.fc(self.conv(x[:, None, :]).mean(-1))


class SeqLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 16, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, 4)
        return self.fc(self.lstm(x)[0][:, -1])


class CellLoop(nn.Module):
    """A GRU cell stepped by hand over the time axis."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(4, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, 4)
        h = x.new_zeros(x.shape[0], 16)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.fc(h)


def pyg_gcn(layers: int) -> nn.Module:
    from torch_geometric.nn import GCNConv

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(GCNConv(8 if k == 0 else 16, 16) for k in range(layers))
            self.fc = nn.Linear(16, 3)

        def forward(self, x, edge_index):
            for conv in self.convs:
                x = torch.relu(conv(x, edge_index))
            return self.fc(x)

    return Net()


def graph(nodes: int = 20, edges: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(nodes, 8, generator=g), torch.randint(0, nodes, (2, edges), generator=g)


# --- skip connections ----------------------------------------------------------------------------

def test_plain_30_layer_cnn_fails_skip_connections():
    report = check(conv_stack(30), task=IMAGE, n_samples=1000, input_shape=(3, 8, 8))
    finding = report.finding("skip-connections")
    assert finding.status == "fail", report.report()
    assert finding.data["weight_layers_longest_path"] == 31  # 30 convs + the Linear head
    assert finding.data["weight_layers_shortest_path"] == 31
    assert finding.data["residual_adds"] == 0
    assert finding.remedies[0].startswith("add skip connections")
    assert not report.ok
    # The measured step agrees: the first conv's gradient vanished against the head's.
    grad = report.finding("gradient-flow")
    assert grad.status in ("warn", "fail") and "vanishing" in grad.fact
    assert report.structure.architecture == "cnn"


def test_the_same_depth_with_residual_adds_passes():
    report = check(conv_stack(30, residual=True), task=IMAGE, n_samples=1000, input_shape=(3, 8, 8))
    finding = report.finding("skip-connections")
    assert finding.status == "pass", report.report()
    assert finding.data["residual_adds"] == 29
    assert finding.data["weight_layers_shortest_path"] == 2  # stem + head


@pytest.mark.parametrize("depth,status", [(8, "pass"), (15, "warn")])
def test_plain_depth_thresholds(depth, status):
    report = check(conv_stack(depth), input_shape=(3, 8, 8))
    assert report.finding("skip-connections").status == status


# --- depth and width -----------------------------------------------------------------------------

def test_100_by_8_mlp_warns_deep_and_narrow():
    report = check(mlp(100, 8), task="tabular-classification", input_shape=(16,))
    finding = report.finding("depth-width")
    assert finding.status == "warn", report.report()
    assert "deep and narrow" in finding.fact
    assert finding.data["min_width"] == 8 and finding.data["depth"] == 101
    assert finding.remedies and "widen" in finding.remedies[0]


def test_balanced_mlp_passes_and_shallow_wide_warns():
    assert check(mlp(3, 64), input_shape=(16,)).finding("depth-width").status == "pass"
    wide = check(mlp(1, 2048), input_shape=(16,)).finding("depth-width")
    assert wide.status == "warn" and "shallow and wide" in wide.fact
    assert wide.data["max_width"] == 2048


# --- inductive bias ------------------------------------------------------------------------------

def test_mlp_over_pixels_of_300_images_warns_inductive_bias():
    # Flattened by the model, or flattened beforehand: either way an MLP over pixels.
    for model, shape in ((PixelMLP(), (3, 8, 8)), (mlp(2, 64, in_features=192), (192,))):
        report = check(model, task=IMAGE, n_samples=300, input_shape=shape)
        finding = report.finding("inductive-bias")
        assert finding.status == "warn", report.report()
        assert finding.data["architecture"] == "mlp" and finding.data["data_kind"] == "image"
        assert "CNN" in finding.remedies[0]
    # Without a task the inputs' shape says images.
    assert check(PixelMLP(), input_shape=(3, 8, 8)).finding("inductive-bias").status == "warn"


def test_cnn_on_the_same_images_passes():
    report = check(conv_stack(4), task=IMAGE, n_samples=300, input_shape=(3, 8, 8))
    assert report.finding("inductive-bias").status == "pass"


def test_transformer_on_small_image_set_warns_and_on_sequences_passes():
    small = check(TinyViT(), task=IMAGE, n_samples=300, input_shape=(3, 8, 8))
    finding = small.finding("inductive-bias")
    assert finding.status == "warn" and finding.data["architecture"] == "transformer"
    large = check(TinyViT(), task=IMAGE, n_samples=1_000_000, input_shape=(3, 8, 8))
    assert large.finding("inductive-bias").status == "pass"
    seq = check(zoo.create("transformer", seq_len=8, d_model=32, depth=2, num_classes=3),
                task="sequence-classification", n_samples=5_000)
    assert seq.finding("inductive-bias").status == "warn"  # < 10k samples (the seed)
    seq = check(zoo.create("transformer", seq_len=8, d_model=32, depth=2, num_classes=3),
                task="sequence-classification", n_samples=50_000)
    assert seq.finding("inductive-bias").status == "pass"


def test_cnn_on_tabular_data_warns_and_mlp_passes():
    conv = check(FeatureConv(), task="tabular-regression", input_shape=(16,))
    assert conv.finding("inductive-bias").status == "warn", conv.report()
    assert "spatial" in conv.finding("inductive-bias").fact
    assert check(mlp(2, 32, out=1), task="tabular-regression",
                 input_shape=(16,)).finding("inductive-bias").status == "pass"


def test_graph_task_without_edges_warns_and_gcn_passes():
    x, edge_index = graph()
    no_edges = check(mlp(2, 16, in_features=8, out=3), task="node-classification",
                     example_inputs=(x,))
    finding = no_edges.finding("inductive-bias")
    assert finding.status == "warn" and "no message passing" in finding.fact
    empty = check(pyg_gcn(2), task="node-classification",
                  example_inputs=(x, torch.zeros(2, 0, dtype=torch.long)))
    assert "no edges" in empty.finding("inductive-bias").fact
    ok = check(pyg_gcn(2), task="node-classification", example_inputs=(x, edge_index))
    assert ok.finding("inductive-bias").status == "pass", ok.report()


# --- over-smoothing and recurrent length ---------------------------------------------------------

def test_8_layer_gcn_warns_over_smoothing():
    x, edge_index = graph()
    report = check(pyg_gcn(8), task="node-classification", example_inputs=(x, edge_index))
    finding = report.finding("over-smoothing")
    assert finding.status == "warn", report.report()
    assert finding.data["message_passing_hops"] == 8
    zoo_gcn = check(zoo.create("gcn", layers=8, num_classes=3), task="node-classification")
    assert zoo_gcn.finding("over-smoothing").data["message_passing_hops"] == 8
    assert zoo_gcn.finding("over-smoothing").status == "warn"
    two = check(pyg_gcn(2), example_inputs=(x, edge_index)).finding("over-smoothing")
    assert two.status == "pass" and two.data["message_passing_hops"] == 2


@pytest.mark.parametrize("model", [SeqLSTM, CellLoop])
def test_recurrent_net_over_500_steps_warns_and_over_50_passes(model):
    long = check(model(), task="sequence-classification", input_shape=(500, 4))
    finding = long.finding("recurrent-length")
    assert finding.status == "warn", long.report()
    assert finding.data["recurrent"][0]["steps"] == 500
    assert "Transformer" in finding.remedies[0]
    short = check(model(), task="sequence-classification", input_shape=(50, 4))
    assert short.finding("recurrent-length").status == "pass"
    # Recurrence through time is not depth: one recurrent layer + the head.
    assert short.structure.longest == 2


# --- capacity ------------------------------------------------------------------------------------

def test_capacity_against_the_factory_cap():
    from zoo.factory.policy import capacity_cap

    big = check(mlp(3, 512), task="tabular-regression", n_samples=100, input_shape=(16,))
    finding = big.finding("capacity")
    assert finding.status == "warn"
    assert finding.data["cap"] == capacity_cap("tabular", 100)
    assert finding.data["params"] > finding.data["cap"]
    assert finding.remedies[0].startswith("reduce capacity")
    small = check(mlp(1, 16), task="tabular-regression", n_samples=100_000, input_shape=(16,))
    assert small.finding("capacity").status == "pass"
    linear = check(nn.Linear(16, 1), task="tabular-regression", n_samples=10, input_shape=(16,))
    assert linear.finding("capacity").status == "pass"  # the baseline is always allowed
    assert check(mlp(1, 16), input_shape=(16,)).finding("capacity").status == "skip"


# --- gradient flow -------------------------------------------------------------------------------

class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 2)
        self.head = nn.Linear(2, 10)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)).detach())  # the bug: body never learns


def test_detached_layer_fails_gradient_flow():
    finding = check(Detached(), input_shape=(16,)).finding("gradient-flow")
    assert finding.status == "fail"
    assert set(finding.data["no_gradient"]) == {"body.weight", "body.bias"}
    healthy = check(mlp(2, 32), input_shape=(16,)).finding("gradient-flow")
    assert healthy.status == "pass" and 1e-3 < healthy.data["ratio"] < 1e3


def test_huge_init_warns_exploding_by_the_seeds_criterion():
    model = mlp(2, 32)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50.0)
    finding = check(model, input_shape=(16,)).finding("gradient-flow")
    assert finding.status in ("warn", "fail") and "exploding" in finding.fact
    assert "clipping" in finding.remedies[0]


# --- the zoo's own models pass clean --------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs,task,n", [
    ("resnet18", {"num_classes": 10, "img_size": 32, "width_mult": 0.5}, IMAGE, 50_000),
    ("mobilenetv2", {"num_classes": 10, "img_size": 32}, IMAGE, 50_000),
    ("transformer", {"num_classes": 3, "seq_len": 16, "d_model": 64}, "sequence-classification",
     50_000),
    ("gcn", {"num_classes": 7}, "node-classification", 2_708),
])
def test_zoo_models_pass_clean(name, kwargs, task, n):
    model = zoo.create(name, **kwargs)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    model.eval()
    report = zoo.check(model, task=task, n_samples=n)
    assert set(statuses(report).values()) == {"pass"}, report.report()
    # The caller's model is untouched: same weights, still in eval mode, no gradients.
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], t) for k, t in model.state_dict().items())


def test_resnet18_structure():
    report = check(zoo.create("resnet18", num_classes=10, img_size=32, width_mult=0.25))
    skip = report.finding("skip-connections").data
    # conv1 + 8 basic blocks x 2 convs + fc; through the shortcuts: conv1 + 3 projections + fc.
    assert (skip["weight_layers_longest_path"], skip["weight_layers_shortest_path"]) == (18, 5)
    assert skip["residual_adds"] == 8
    assert report.finding("gradient-flow").data["first_layer"] == "conv1.weight"


def test_meta_device_model_checks_structure_and_skips_gradients():
    report = check(zoo.create("resnet50", device="meta"), task=IMAGE, n_samples=300)
    assert report.finding("skip-connections").data["weight_layers_longest_path"] == 50
    assert report.finding("capacity").status == "warn"
    assert report.finding("gradient-flow").status == "skip"


# --- inputs and bad arguments --------------------------------------------------------------------

def test_inputs_are_required_for_a_plain_module():
    with pytest.raises(ValueError, match="input_shape=None is not accepted") as info:
        check(mlp(2, 8))
    assert "example_inputs" in str(info.value)
    report = check(mlp(2, 8), example_inputs=torch.randn(4, 16))
    assert report.structure.input_kinds == ["tabular"]


def test_bad_arguments_raise_value_error_naming_them():
    model = mlp(2, 8)
    for kwargs, name in [({"task": "images"}, "task='images'"), ({"n_samples": 0}, "n_samples=0"),
                         ({"batch_size": 0}, "batch_size=0"),
                         ({"input_shape": (0, 3)}, "input_shape"),
                         ({"input_shape": (16,), "overfit_batch": "yes"}, "overfit_batch"),
                         ({"example_inputs": ()}, "example_inputs")]:
        with pytest.raises(ValueError, match=name.replace("(", r"\(")):
            check(model, **kwargs)
    with pytest.raises(ValueError, match="model=int"):
        check(3)
    with pytest.raises(ValueError, match="raised RuntimeError"):
        check(model, input_shape=(5,))  # the forward itself fails: say so, with the shapes
