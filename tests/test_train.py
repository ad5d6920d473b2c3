"""fit / train_one_epoch / evaluate / predict on a tiny separable problem."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ecmm.train import classification_loss, evaluate, fit, make_optimizer, move_to_device, predict


def _loaders():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=generator)
    y = (x[:, 0] > 0).long()
    dataset = TensorDataset(x, y)
    return DataLoader(dataset, batch_size=16, shuffle=False), DataLoader(dataset, batch_size=32)


def test_fit_learns_and_returns_history():
    torch.manual_seed(0)
    train, val = _loaders()
    model = torch.nn.Linear(2, 2)
    seen = []
    history = fit(model, train, epochs=5, learning_rate=0.1, val_loader=val, device="cpu",
                  progress=False, callback=lambda epoch, m, h: seen.append(epoch) or {"extra": epoch})
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert len(history["step_loss"]) == 5 * 4
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_loss"][-1] < 0.3
    assert history["extra"] == [1, 2, 3, 4, 5] and seen == [1, 2, 3, 4, 5]
    logits, labels = predict(model, val, device="cpu")
    assert logits.shape == (64, 2) and (logits.argmax(-1) == labels).float().mean() > 0.9


def test_custom_loss_contract_and_param_groups():
    train, _ = _loaders()
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 2))
    groups = [{"params": model[0].parameters(), "lr": 1e-4}, {"params": model[1].parameters()}]
    calls = []

    def loss_fn(m, batch):
        calls.append(len(batch))
        return classification_loss(m, batch)

    history = fit(model, train, epochs=1, param_groups=groups, learning_rate=1e-2,
                  loss_fn=loss_fn, device="cpu", progress=False)
    assert calls == [2, 2, 2, 2] and len(history["train_loss"]) == 1
    fresh_groups = [{"params": model[0].parameters(), "lr": 1e-4},
                    {"params": model[1].parameters()}]
    optimizer = make_optimizer(model, fresh_groups, learning_rate=1e-2)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-4, 1e-2]


def test_frozen_parameters_do_not_change():
    train, val = _loaders()
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    before = model[0].weight.clone()
    fit(model, train, epochs=1, device="cpu", progress=False)
    torch.testing.assert_close(model[0].weight, before)
    assert evaluate(model, val, device="cpu") > 0


def test_errors_and_helpers():
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="No trainable"):
        make_optimizer(model)
    with pytest.raises(ValueError, match="epochs"):
        fit(torch.nn.Linear(2, 2), [], epochs=0, progress=False)
    moved = move_to_device({"a": (torch.ones(1), [torch.zeros(1)])}, torch.device("cpu"))
    assert moved["a"][1][0].device.type == "cpu"
