"""ecmm.exported_text: a text encoder exported to ONNX gives the torch module's outputs, torch-free at load."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ecmm.exported_text import ExportedTextEncoder, export_text_encoder, exportable_tokenizer

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
