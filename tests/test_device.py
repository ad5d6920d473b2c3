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


@pytest.mark.parametrize("choice", ["tpu", "gpu", "cuda:x", ""])
def test_an_unknown_device_names_the_allowed_values(monkeypatch, choice):
    if not choice:  # an empty ECMM_DEVICE means "pick the best"
        monkeypatch.setenv("ECMM_DEVICE", choice)
        assert get_device().type in ("cpu", "cuda", "mps")
        return
    monkeypatch.setenv("ECMM_DEVICE", choice)
    with pytest.raises(ValueError, match="ECMM_DEVICE .* use one of cpu, cuda, cuda:N or mps"):
        get_device()
    with pytest.raises(ValueError, match="use one of cpu, cuda, cuda:N or mps"):
        get_device(choice)
