"""Tests for ecmm.losses: symmetry, perfect pairs, a naive loop, duplicate captions."""

import math

import pytest
import torch
import torch.nn.functional as F

from ecmm.losses import clip_loss, siglip_loss


def _pairs(batch_size=6, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch_size, dim, generator=generator), dim=1)
    text = F.normalize(torch.randn(batch_size, dim, generator=generator), dim=1)
    return image, text


def _naive_clip_loss(image, text, scale, caption_ids):
    """Loop over rows and columns: -log of the softmax mass on the row's positives."""
    batch_size = image.shape[0]
    total = 0.0
    for direction in (0, 1):
        a, b = (image, text) if direction == 0 else (text, image)
        for i in range(batch_size):
            logits = [scale * float(a[i] @ b[j]) for j in range(batch_size)]
            log_z = math.log(sum(math.exp(value) for value in logits))
            positives = [j for j in range(batch_size) if caption_ids[j] == caption_ids[i]]
            total += -math.log(sum(math.exp(logits[j] - log_z) for j in positives)) / batch_size
    return total / 2


def test_clip_loss_matches_naive_loop_and_cross_entropy():
    image, text = _pairs()
    loss = clip_loss(image, text, 10.0)
    assert loss.item() == pytest.approx(_naive_clip_loss(image, text, 10.0, list(range(6))), rel=1e-5)
    logits = 10.0 * image @ text.T
    labels = torch.arange(6)
    reference = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_clip_loss_is_symmetric_in_image_and_text():
    image, text = _pairs(seed=1)
    assert clip_loss(image, text, 5.0).item() == pytest.approx(clip_loss(text, image, 5.0).item(), rel=1e-6)


def test_perfect_pairs_give_low_loss():
    image, _ = _pairs(batch_size=4, dim=4)
    image = torch.eye(4)  # orthogonal, perfectly paired
    perfect = clip_loss(image, image, 50.0).item()
    shuffled = clip_loss(image, image[[1, 2, 3, 0]], 50.0).item()
    assert perfect < 1e-6
    assert shuffled > 10.0
    assert siglip_loss(image, image, 50.0, -10.0).item() < siglip_loss(image, image[[1, 2, 3, 0]], 50.0, -10.0).item()


def test_duplicate_captions_are_positives_not_negatives():
    # rows 0 and 1 are two photos of one SKU: same caption vector, same caption id
    image = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    text = image.clone()
    ids = torch.tensor([7, 7, 3])
    with_ids = clip_loss(image, text, 20.0, caption_ids=ids)
    assert with_ids.item() == pytest.approx(_naive_clip_loss(image, text, 20.0, ids.tolist()), abs=1e-6)
    # a perfect match: the id-aware loss is ~0, while arange labels cannot tell the two copies of
    # the caption apart and stay stuck near log(2) on those rows
    assert with_ids.item() < 1e-6
    without_ids = clip_loss(image, text, 20.0)
    assert without_ids.item() == pytest.approx(2 / 3 * math.log(2), rel=1e-3)
    # siglip: the duplicate pair is a positive, so a perfect match also scores better with ids
    assert siglip_loss(image, text, 20.0, -10.0, caption_ids=ids) < siglip_loss(image, text, 20.0, -10.0)


def test_siglip_loss_matches_naive_loop():
    image, text = _pairs(batch_size=5, seed=2)
    ids = [0, 1, 1, 2, 3]
    scale, bias = 10.0, -5.0
    expected = 0.0
    for i in range(5):
        for j in range(5):
            label = 1.0 if ids[i] == ids[j] else -1.0
            z = label * (scale * float(image[i] @ text[j]) + bias)
            expected += math.log1p(math.exp(-z))
    loss = siglip_loss(image, text, scale, bias, caption_ids=torch.tensor(ids))
    assert loss.item() == pytest.approx(expected / 5, rel=1e-5)


def test_bad_shapes_raise_value_error():
    image, text = _pairs()
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(image, text[:3], 1.0)
    with pytest.raises(ValueError, match="caption_ids"):
        clip_loss(image, text, 1.0, caption_ids=torch.arange(3))
