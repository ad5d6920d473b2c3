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


def _clip_batch(seed=0, size=8):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 6, generator=generator)
    tokens = torch.randn(size, 5, generator=generator)
    return {"images": images, "tokens": tokens, "caption_ids": torch.arange(size) // 2}


class _TinyTowers(torch.nn.Module):
    """A CLIP-like toy: linear image and text towers and a learnable logit scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image, self.text = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def encode_image(self, images):
        return torch.nn.functional.normalize(self.image(images), dim=-1)

    def encode_text(self, tokens):
        return torch.nn.functional.normalize(self.text(tokens), dim=-1)

    def scale(self):
        return self.logit_scale.exp().clamp(max=100.0)


def test_accumulation_equals_one_bigger_batch():
    from ecmm.train import clip_step

    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, generator=generator), torch.randint(2, (32,), generator=generator)
    small, big = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    big.load_state_dict(small.state_dict())
    quarters = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    accumulated = fit(small, quarters, steps=3, accumulation_steps=4, learning_rate=0.1, device="cpu", progress=False)
    whole = fit(big, [(x, y)], steps=3, learning_rate=0.1, device="cpu", progress=False)
    assert accumulated["step_loss"] == pytest.approx(whole["step_loss"], rel=1e-5)
    torch.testing.assert_close(small.weight, big.weight, rtol=1e-5, atol=1e-6)
    assert clip_step(_TinyTowers(), _clip_batch()).ndim == 0


def test_gradient_clipping_bounds_the_step():
    model = torch.nn.Linear(3, 2)
    batch = (100 * torch.randn(16, 3), torch.randint(2, (16,)))
    history = fit(model, [batch], steps=2, max_grad_norm=0.5, device="cpu", progress=False,
                  optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    assert len(history["grad_norm"]) == 2 and history["grad_norm"][0] > 0.5  # measured before clipping
    before = {key: value.clone() for key, value in model.state_dict().items()}
    fit(model, [batch], steps=1, max_grad_norm=0.5, device="cpu", progress=False,
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    moved = torch.sqrt(sum(((model.state_dict()[key] - value) ** 2).sum() for key, value in before.items()))
    assert float(moved) == pytest.approx(0.5, rel=1e-4)  # SGD with lr 1 moves by the clipped norm


def test_warmup_cosine_schedule_per_step():
    from ecmm.train import warmup_cosine

    assert [warmup_cosine(step, 10, 2) for step in (0, 1)] == [0.5, 1.0]
    assert warmup_cosine(6, 10, 2) == pytest.approx(0.5) and warmup_cosine(10, 10, 2) == pytest.approx(0.0)
    model = torch.nn.Linear(3, 2)
    history = fit(model, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))], steps=4, warmup_steps=2,
                  learning_rate=0.1, device="cpu", progress=False)
    assert history["learning_rate"] == pytest.approx([0.1 * warmup_cosine(step, 4, 2) for step in range(4)])


def test_the_optimiser_schedule_and_precision_parts_are_importable_from_the_loop():
    from ecmm import optimisation, train

    for name in optimisation.__all__:
        if name != "AMP_DTYPES":
            assert getattr(train, name) is getattr(optimisation, name) and name in train.__all__
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="No trainable parameters"):
        optimisation.make_optimizer(frozen)
    with pytest.raises(ValueError, match="CUDA"):
        optimisation.autocast_context(torch.device("cpu"), "fp16")


def test_bf16_autocast_on_cpu_stays_close_to_fp32():
    from ecmm.train import autocast_context, clip_step

    model, batch = _TinyTowers(), _clip_batch(size=16)
    full = clip_step(model, batch)
    with autocast_context(torch.device("cpu"), "bf16"):
        half = clip_step(model, batch)
    assert torch.isfinite(half) and half.item() == pytest.approx(full.item(), rel=2e-2)
    history = fit(_TinyTowers(), [batch], loss_fn=clip_step, steps=5, amp="bf16", learning_rate=0.05,
                  device="cpu", progress=False)
    assert history["step_loss"][-1] < history["step_loss"][0]
    with pytest.raises(ValueError, match="CUDA"):
        autocast_context(torch.device("cpu"), "fp16")


def test_steps_or_epochs_and_quiet_progress(capsys, monkeypatch):
    monkeypatch.setenv("ECMM_PROGRESS", "never")
    train, _ = _loaders()
    with pytest.raises(ValueError, match="exactly one"):
        fit(torch.nn.Linear(2, 2), train, epochs=1, steps=3, progress=False)
    history = fit(torch.nn.Linear(2, 2), train, steps=6, device="cpu", description="tiny")  # 4 batches per pass
    assert len(history["step_loss"]) == 6 and history["epoch"] == [1, 2]
    log = capsys.readouterr().err.strip().splitlines()
    assert log[0] == "tiny: started (6 steps)" and log[-1].startswith("tiny: done, 6 steps") and len(log) == 2
