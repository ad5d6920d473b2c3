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
