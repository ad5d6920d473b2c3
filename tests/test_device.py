import pytest
import torch

from ecmm.device import get_device, seed_everything


def test_get_device_honours_argument_and_environment(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("ECMM_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_unavailable_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="use 'cpu'"):
        get_device("cuda")


def test_seed_everything_repeats_draws():
    seed_everything(3)
    first = torch.rand(4)
    seed_everything(3)
    assert torch.equal(first, torch.rand(4))
