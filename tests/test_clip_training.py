"""ecmm.clip_training: the pairs of a run, cached or streamed, on every rank."""

import numpy as np
import torch

from ecmm.clip_training import PairBatches, StreamedPhotos, preprocessed_photos
from ecmm.data.catalogs import ArrayPhotos


class Scale:
    """A stand-in preprocessing: uint8 ``(n, H, W, 3)`` -> float ``(n, 3, H, W)`` in [0, 1]."""

    image_size = 8

    def __call__(self, images):
        return torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255


class CountingPhotos(ArrayPhotos):
    def __init__(self, array):
        super().__init__(array)
        self.reads = []

    def read(self, row):
        self.reads.append(int(row))
        return super().read(row)


def _photos():
    return np.random.default_rng(0).integers(0, 256, (10, 3, 8, 8, 3), dtype=np.uint8)


def test_streamed_photos_are_the_cached_tensor_and_read_each_sku_once():
    array, rows = _photos(), np.array([1, 4, 5, 8])
    cached = preprocessed_photos(Scale(), array)[torch.as_tensor(rows)].flatten(0, 1)  # (12, 3, 8, 8)
    photos = CountingPhotos(array)
    streamed = StreamedPhotos(photos, rows, Scale())
    positions = torch.tensor([11, 0, 1, 7, 2])  # SKU positions 3, 0, 0, 2, 0
    assert len(streamed) == len(cached) == 12
    assert torch.equal(streamed[positions], cached[positions])
    assert sorted(photos.reads) == [1, 5, 8]  # catalog rows of SKU positions 0, 2, 3: once each


def test_every_rank_gets_its_share_of_the_global_batch_cached_or_streamed():
    array, rows = _photos(), np.arange(10)
    texts = [f"caption {i}" for i in range(20)]
    icons = (torch.rand(5, 3, 8, 8), [f"icon {i}" for i in range(5)], torch.arange(5))
    for images in (preprocessed_photos(Scale(), array).flatten(0, 1), StreamedPhotos(ArrayPhotos(array), rows, Scale())):
        def batch(part):
            return next(iter(PairBatches(images, texts, 3, 10, 6, 2, icons, lambda t: list(t), part, seed=4)))

        whole, first, second = batch(slice(0, 8)), batch(slice(0, 4)), batch(slice(4, 8))
        assert torch.equal(torch.cat([first["images"], second["images"]]), whole["images"])
        assert first["tokens"] + second["tokens"] == whole["tokens"]
        assert torch.equal(first["caption_ids"], whole["caption_ids"])  # ids describe the global batch
        assert torch.equal(second["images"][2:], icons[0][whole["caption_ids"][6:] - 10])  # the replayed icons
