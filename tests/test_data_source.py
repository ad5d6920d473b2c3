import numpy as np
import torch

from ecmm.data import augment_photos, load_source_corpus
from ecmm.data.source import emoji_group


def test_groups_are_coarse_and_named():
    assert emoji_group("\U0001F600") == "emoticons"
    assert emoji_group("\U0001F1EB\U0001F1F7") == "flags"
    assert emoji_group("1\ufe0f\u20e3") == "keycaps"
    assert emoji_group("\u00a9\ufe0f") == "other symbols"


def test_source_corpus_has_one_class_per_emoji():
    frame, images = load_source_corpus()
    assert len(frame) > 1500 and images.shape == (len(frame), 128, 128, 3)
    assert frame["label"].tolist() == list(range(len(frame)))
    assert frame["emoji"].is_unique and frame["name"].str.len().gt(0).all()


def test_augment_photos_is_deterministic_and_shaped():
    images = np.full((3, 32, 32, 3), 255, np.uint8)
    images[:, 8:24, 8:24] = (200, 0, 0)
    first = augment_photos(images, torch.Generator().manual_seed(1), image_size=16)
    second = augment_photos(images, torch.Generator().manual_seed(1), image_size=16)
    assert first.shape == (3, 3, 16, 16) and torch.equal(first, second)
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert (first[:, 0] - first[:, 1]).max() > 0.5  # the red square survives
