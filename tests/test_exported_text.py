"""ecmm.exported_text: a text encoder exported to ONNX gives the torch module's outputs, torch-free at load."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ecmm.exported_text import ExportedTextEncoder, QueryEncoders, export_text_encoder, exportable_tokenizer

pytest.importorskip("onnxruntime")


class MeanTokens(nn.Module):
    """Mean of token embeddings under the mask, then two named outputs: ``(B, L) -> (B, 3 + 2)``."""

    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocabulary, 5)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()  # (B, L, 1)
        return (self.embedding(input_ids) * mask).sum(1) / mask.sum(1)  # (B, 5)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ecmm.models.text import offline_text_model_dir

    return AutoTokenizer.from_pretrained(str(offline_text_model_dir(verify=False)))


def test_export_matches_the_torch_module_on_new_texts(tmp_path, tokenizer):
    module = MeanTokens(len(tokenizer))
    spec = export_text_encoder(module, tokenizer, tmp_path, {"first": 3, "second": 2}, max_length=8)
    assert spec["max_abs_difference"] <= 1e-5
    encoder = ExportedTextEncoder.load(tmp_path)
    texts = ["a much longer sentence than any probe, which the tokenizer truncates to eight tokens", "bag"]
    reference = tokenizer(texts, padding=True, truncation=True, max_length=8, return_tensors="pt")
    expected = module(reference["input_ids"], reference["attention_mask"]).detach().numpy()  # (2, 5)
    outputs = encoder(texts)
    assert outputs["first"].shape == (2, 3) and outputs["second"].shape == (2, 2)
    np.testing.assert_allclose(np.concatenate([outputs["first"], outputs["second"]], axis=1), expected, atol=1e-5)
    assert encoder.tokenize(texts)["input_ids"].shape == (2, 8)


class Projected(nn.Module):
    """The CLIP-tower stand-in: the mean of :class:`MeanTokens` through a fixed map, ``(B, L) -> (B, 2)``."""

    def __init__(self, base: MeanTokens) -> None:
        super().__init__()
        self.base = base

    def forward(self, input_ids, attention_mask):
        return self.base(input_ids, attention_mask)[:, :2] * 2.0


class Joint(nn.Module):
    """One pass for both: ``(B, L) -> (B, 2 + 5)``, the projected part first."""

    def __init__(self, base: MeanTokens) -> None:
        super().__init__()
        self.base = base

    def forward(self, input_ids, attention_mask):
        features = self.base(input_ids, attention_mask)
        return torch.cat([features[:, :2] * 2.0, features], dim=-1)


class Counted:
    """An exported encoder that counts its runs."""

    def __init__(self, encoder):
        self.encoder, self.runs, self.outputs, self.spec = encoder, 0, encoder.outputs, encoder.spec

    def tokenize(self, texts):
        return self.encoder.tokenize(texts)

    def __call__(self, texts, tokens=None):
        self.runs += 1
        return self.encoder(texts, tokens)


def test_joint_export_answers_both_encoders_with_one_pass_and_only_where_tokens_agree(tmp_path, tokenizer):
    base = MeanTokens(len(tokenizer))
    export_text_encoder(Projected(base), tokenizer, tmp_path / "clip", {"clip": 2}, max_length=6)
    export_text_encoder(Joint(base), tokenizer, tmp_path / "sentence", {"clip": 2, "sentence": 5}, max_length=12)
    clip, sentence = (Counted(ExportedTextEncoder.load(tmp_path / name)) for name in ("clip", "sentence"))
    encoders = QueryEncoders(clip, sentence)
    short = ["red bag", "a blue kettle"]
    np.testing.assert_allclose(encoders.encode("clip", short), clip.encoder(short)["clip"], atol=1e-6)
    np.testing.assert_allclose(encoders.encode("sentence", short), sentence.encoder(short)["sentence"], atol=1e-6)
    assert (clip.runs, sentence.runs) == (0, 1)  # the same texts: one joint pass gave both
    long = ["a sentence with far more than six tokens in it, so the clip tokenizer cuts it"]
    np.testing.assert_allclose(encoders.encode("clip", long), clip.encoder(long)["clip"], atol=1e-6)
    assert clip.runs == 1  # longer than the CLIP context: its own tokens, not the joint pass's
    np.testing.assert_allclose(encoders.encode("sentence", long), sentence.encoder(long)["sentence"], atol=1e-6)
    assert encoders.encode("clip", long) is not None and clip.runs == 2  # the joint's clip part is not kept
    export_text_encoder(base, tokenizer, tmp_path / "plain", {"sentence": 5}, max_length=12)
    plain = Counted(ExportedTextEncoder.load(tmp_path / "plain"))
    separate = QueryEncoders(clip, plain)
    separate.encode("clip", short), separate.encode("sentence", short)
    assert not separate.joint and (clip.runs, plain.runs) == (3, 1)  # two encoders, one pass each
    assert sorted(encoders) == ["clip", "sentence"] and encoders["clip"](short).shape == (2, 2)
    runs = sentence.runs
    encoders["sentence"](short)
    assert sentence.runs == runs  # kept from the clip call just before
    encoders.forget()
    encoders["sentence"](short)
    assert sentence.runs == runs + 1  # forgotten: the pass runs again


def test_a_tokenizer_without_a_fast_backend_is_refused(tmp_path):
    class Slow:
        pad_token_id = 0

    assert "no fast" in exportable_tokenizer(Slow())
    with pytest.raises(ValueError, match="cannot be exported"):
        export_text_encoder(MeanTokens(10), Slow(), tmp_path, {"all": 5}, max_length=8)


def test_text_search_modules_do_not_import_torch():
    code = ("import sys, ecmm.app, ecmm.search, ecmm.data.catalogs, ecmm.lexical, ecmm.exported_text, "
            "ecmm.service.assistant, ecmm.service.replies, ecmm.assets, ecmm.cli.search, ecmm.cli.support; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
