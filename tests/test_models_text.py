import shutil

import pytest
import torch

from ecmm.models.text import MINILM_SHA256, load_text_encoder, offline_text_model_dir, verify_sha256


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(device="cpu")


def test_bundled_weights_pass_the_sha256_check():
    verify_sha256(offline_text_model_dir(verify=False) / "model.safetensors", MINILM_SHA256)


def test_tampered_weights_are_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(offline_text_model_dir(verify=False), folder)
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="force-reinstall"):
        verify_sha256(folder / "model.safetensors", MINILM_SHA256)


def test_encode_gives_normalised_sentence_embeddings(encoder):
    embeddings = encoder.encode(["blue running shoe", "a pair of blue sneakers", "a wooden chair"])
    assert embeddings.shape == (3, 384)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2  # paraphrases are closer than unrelated text


def test_forward_mean_pools_over_real_tokens_only(encoder):
    tokens = encoder.tokenize(["shoe", "a much longer sentence about shoes"])
    pooled = encoder(**tokens)
    alone = encoder(**encoder.tokenize(["shoe"]))
    assert torch.allclose(pooled[0], alone[0], atol=1e-4)  # padding does not change the result
