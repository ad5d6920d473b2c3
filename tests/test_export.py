"""Export, quantisation and timing helpers on tiny modules (no pretrained assets)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ecmm import export


class TinyClip(nn.Module):
    """A CLIP-shaped toy: a conv image tower and an embedding-bag text tower, both normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.image_projection = nn.Linear(4, 8)
        self.embedding = nn.Embedding(50, 16)
        self.text_hidden = nn.Linear(16, 32)
        self.text_projection = nn.Linear(32, 8)

    def encode_image(self, images):
        return F.normalize(self.image_projection(self.conv(images).mean(dim=(2, 3))), dim=-1)

    def encode_text(self, tokens):
        mask = tokens["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
        pooled = (self.embedding(tokens["input_ids"]) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(self.text_projection(torch.relu(self.text_hidden(pooled))), dim=-1)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return TinyClip().eval()


def _tokens(batch, length, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length // 2:] = 0
    return ids, mask


def test_towers_wrap_encoders(model):
    images = torch.randn(2, 3, 8, 8)
    ids, mask = _tokens(2, 5)
    assert torch.equal(export.ImageTower(model)(images), model.encode_image(images))
    assert torch.equal(export.TextTower(model)(ids, mask), model.encode_text({"input_ids": ids, "attention_mask": mask}))


def test_torchscript_roundtrip_matches(model, tmp_path):
    tower = export.ImageTower(model)
    path = export.export_torchscript(tower, torch.randn(2, 3, 8, 8), tmp_path / "image.pt")
    loaded = export.load_torchscript(path)
    images = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert export.max_abs_difference(tower(images), loaded(images)) < 1e-6


def test_onnx_text_tower_runs_with_dynamic_batch_and_length(model, tmp_path):
    pytest.importorskip("onnxruntime")
    tower = export.TextTower(model)
    path = export.export_onnx(tower, _tokens(2, 5), tmp_path / "text.onnx", input_names=["input_ids", "attention_mask"])
    ids, mask = _tokens(4, 9, seed=1)  # another batch size and sequence length than the example
    output = export.run_onnx(path, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        expected = tower(ids, mask)
    assert output.shape == (4, 8)
    assert export.max_abs_difference(expected, output) < 1e-5


def test_export_onnx_rejects_mismatched_names(model, tmp_path):
    with pytest.raises(ValueError, match="input_names"):
        export.export_onnx(export.TextTower(model), _tokens(2, 5), tmp_path / "x.onnx", input_names=["input_ids"])


def test_quantize_int8_replaces_linear_layers_and_shrinks(model):
    tower = export.TextTower(model)
    quantized = export.quantize_int8(tower)
    assert export.count_quantized_linear(quantized) == (2, 0)  # text_hidden, text_projection
    assert export.count_quantized_linear(tower) == (0, 2)  # the original is untouched
    big = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    assert export.size_on_disk(export.quantize_int8(big)) < 0.35 * export.size_on_disk(big)
    ids, mask = _tokens(3, 6)
    with torch.no_grad():
        difference = export.max_abs_difference(tower(ids, mask), quantized(ids, mask))
    assert 0 < difference < 0.1  # int8 changes the numbers a little, not a lot


def test_size_on_disk_filter(model):
    everything = export.size_on_disk(model)
    image_only = export.size_on_disk(model, only=lambda key: key.startswith(("conv", "image_projection")))
    assert 0 < image_only < everything


def test_max_abs_difference_and_shape_check():
    assert export.max_abs_difference(np.array([1.0, 2.0]), torch.tensor([1.5, 1.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        export.max_abs_difference(np.zeros(2), np.zeros(3))


def test_measure_latency_counts_calls():
    calls = []
    result = export.measure_latency(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7
    assert set(result) == {"median_ms", "p90_ms", "repeats"} and result["median_ms"] >= 0
    with pytest.raises(ValueError):
        export.measure_latency(lambda: None, repeats=0)


def test_benchmark_towers_table(model):
    text = export.TextTower(model)
    towers = {"text": {"fp32": text, "int8": export.quantize_int8(text)}, "image": {"fp32": export.ImageTower(model)}}
    examples = {"text": _tokens(2, 5), "image": torch.randn(2, 3, 8, 8)}
    table = export.benchmark_towers(towers, examples, sizes={"text": lambda key: "text" in key or "embedding" in key},
                                    batch_sizes=(1, 4), repeats=2)
    assert list(table["precision"]) == ["fp32", "int8", "fp32"]
    assert {"size_mb", "latency_ms_b1", "latency_ms_b4", "max_abs_diff"} <= set(table.columns)
    assert table["max_abs_diff"].iloc[0] == 0.0 and table["max_abs_diff"].iloc[1] > 0
    assert table["size_mb"].iloc[1] < table["size_mb"].iloc[0]


def test_throughput():
    assert export.throughput(lambda: None, 10) > 0
    with pytest.raises(ValueError):
        export.throughput(lambda: None, 0)


class TinyOfflineClip(nn.Module):
    """Named like the offline ClipModel's children, so the towers can drop the other side."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, padding=1)
        self.image_projection = nn.Linear(4, 8)
        self.text_encoder = nn.Embedding(50, 64)
        self.text_projection = nn.Linear(64, 8)

    def encode_image(self, images):
        return F.normalize(self.image_projection(self.backbone(images).mean(dim=(2, 3))), dim=-1)

    def encode_text(self, tokens):
        return F.normalize(self.text_projection(self.text_encoder(tokens["input_ids"]).mean(1)), dim=-1)


def test_towers_hold_only_their_own_weights():
    model = TinyOfflineClip()
    image_keys = set(export.ImageTower(model).state_dict())
    text_keys = set(export.TextTower(model).state_dict())
    assert image_keys == {"model.backbone.weight", "model.backbone.bias", "model.image_projection.weight",
                          "model.image_projection.bias"}
    assert all(key.startswith(("model.text_encoder", "model.text_projection")) for key in text_keys)
    assert len(list(model.children())) == 4  # the model itself is untouched
    tower = export.ImageTower(model)
    assert tower.model.image_projection.weight is model.image_projection.weight  # shared, not copied
    images = torch.randn(2, 3, 8, 8)
    assert torch.equal(tower(images), model.encode_image(images))


class TensorTokenClip(nn.Module):
    """Tokens as one tensor (open_clip style): the tokenizer returns ``(N, 6)`` ids."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Linear(3, 8)
        self.embedding = nn.Embedding(50, 8)

    @staticmethod
    def tokenizer(texts):
        return torch.tensor([[len(word) % 50 for word in (text.split() + [""] * 6)[:6]] for text in texts])

    def encode_image(self, images):
        return F.normalize(self.visual(images.mean(dim=(2, 3))), dim=-1)

    def encode_text(self, tokens):
        return F.normalize(self.embedding(tokens).mean(1), dim=-1)


def test_text_tower_takes_tensor_tokens_and_exports(tmp_path):
    torch.manual_seed(0)
    model = TensorTokenClip().eval()
    tower = export.TextTower(model)
    assert tower.input_names == ("tokens",)
    inputs = tower.example_inputs(["a red backpack", "shoes"])
    assert len(inputs) == 1 and inputs[0].shape == (2, 6)
    assert torch.equal(tower(*inputs), model.encode_text(inputs[0]))
    loaded = export.load_torchscript(export.export_torchscript(tower, inputs, tmp_path / "text.pt"))
    other = tower.example_inputs(["one", "two words", "and three words"])
    with torch.no_grad():
        assert export.max_abs_difference(loaded(*other), tower(*other)) < 1e-6
    with pytest.raises(ValueError, match="token tensors"):
        tower(*inputs, *inputs)


def test_towers_drop_nested_parts_of_a_wrapped_model():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = TensorTokenClip()

    keys = set(export.TextTower(Wrapper()).state_dict())
    assert keys == {"model.model.embedding.weight"}  # model.visual is left out
