"""Test settings: CPU, quick mode, offline, headless plotting; shared small fixtures."""

import os

os.environ.setdefault("ECMM_DEVICE", "cpu")  # unit tests and nbval kernels run on the CPU
os.environ.setdefault("ECMM_QUICK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close matplotlib figures after each test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def text_encoder():
    """The real all-MiniLM-L6-v2 text tower on the CPU, loaded once per test module."""
    from ecmm.models import load_text_encoder

    return load_text_encoder(device="cpu")


@pytest.fixture()
def tiny_clip(text_encoder):
    """A seeded tiny offline CLIP model (16-px CNN, 8-d embeddings) and its preprocessing."""
    import torch

    from ecmm.models.clip import ClipConfig, ClipModel
    from ecmm.models.image import CNNConfig, EcmmCNN, ImagePreprocess

    torch.manual_seed(0)
    model = ClipModel(EcmmCNN(CNNConfig(image_size=16, stem_width=4, widths=(8, 16))), text_encoder,
                      ClipConfig(embed_dim=8))
    return model, ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3)
