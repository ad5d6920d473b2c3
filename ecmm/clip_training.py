"""What a CLIP fine-tuning run trains, and what its frozen parts compute once.

:class:`TrainingView` is the module :func:`ecmm.train.fit` trains: ``encode_image``,
``encode_text`` and ``scale`` of a CLIP-like model, where the inputs may be *cached outputs of
the frozen parts* instead of photos and tokens.  Which caches apply is chosen from what the
model exposes, never from its name:

- a model whose image tower is a stack of ``backbone.blocks`` plus an ``image_projection``
  (the kit's CNN) runs its frozen first blocks once over the photos (:func:`frozen_maps`); the
  view then runs only the trained last blocks (``tail``);
- a model whose text tower is a locked encoder plus ``project_text`` (MiniLM) caches the
  encoder's sentence features (``text="features"``), or, when only its last transformer layer
  trains, the hidden states entering that layer (``text="hidden"``);
- any other model (open_clip's towers, or a tower that trains end to end) gets photos and
  tokens (``tail=None``, ``text="tokens"``) and goes through its own ``encode_*``.

The caches are memoised per weights digest and inputs, so the several runs of one session
(recipes, label fractions) compute them once.  A catalog whose preprocessed photos would not fit
in memory is read batch by batch instead (:class:`StreamedPhotos`): its frozen blocks run on each
batch and nothing is cached over the catalog.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecmm.data.catalogs import ArrayPhotos, PhotoSet

__all__ = ["TrainingView", "PairBatches", "StreamedPhotos", "TEXT_INPUTS", "splits_image_tower", "splits_text_tower",
           "weights_digest", "preprocessed_photos", "preprocessed_bytes", "photo_inputs", "frozen_maps", "text_features",
           "text_inputs", "pad_hidden"]

TEXT_INPUTS = ("features", "hidden", "tokens")


def splits_image_tower(model: Any) -> bool:
    """Whether the image tower is ``backbone.blocks`` + ``image_projection`` (frozen blocks can be cached)."""
    return hasattr(getattr(model, "backbone", None), "blocks") and hasattr(model, "image_projection")


def splits_text_tower(model: Any) -> bool:
    """Whether the text tower is a MiniLM-style ``text_encoder`` + ``project_text`` (features can be cached)."""
    encoder = getattr(model, "text_encoder", None)
    return hasattr(model, "project_text") and hasattr(getattr(encoder, "transformer", None), "encoder")


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes and bytes): a cache key."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class TrainingView(nn.Module):
    """The trainable face of a CLIP-like model for one recipe (trains the model's own parameters).

    Args:
        model: the CLIP-like model (its modules are shared, not copied).
        tail: the trained last CNN blocks applied to cached maps, or None (photos go through
            ``model.encode_image``).
        text: ``"features"`` (cached MiniLM features), ``"hidden"`` (states before MiniLM's last
            layer: cached, or computed per batch from MiniLM tokens) or ``"tokens"`` (``model.encode_text``).
    """

    def __init__(self, model: nn.Module, tail: nn.Module | None, text: str) -> None:
        super().__init__()
        if text not in TEXT_INPUTS:
            raise ValueError(f"text must be one of {TEXT_INPUTS}; got {text!r}")
        self.model, self.tail, self.text = model, tail, text

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Cached maps ``(B, C, h, w)`` (or photos ``(B, 3, S, S)``) -> ``(B, E)`` normalised."""
        if self.tail is None:
            return self.model.encode_image(images)
        return F.normalize(self.model.image_projection(self.tail(images).mean(dim=(2, 3))), dim=-1)

    def encode_text(self, tokens: Any) -> torch.Tensor:
        """Cached features ``(B, 384)``, cached ``{"hidden", "mask"}`` or tokens -> ``(B, E)`` normalised."""
        if self.text == "features":
            return self.model.project_text(tokens)
        if self.text == "tokens":
            return self.model.encode_text(tokens)
        if "hidden" not in tokens:  # tokens of a streamed run: the frozen layers run on this batch
            tokens = self.hidden_states(tokens)
        mask = tokens["mask"]  # (B, T)
        keep = int(mask.sum(1).max())
        mask, hidden = mask[:, :keep], tokens["hidden"][:, :keep]  # (B, t), (B, t, D)
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        out = self.model.text_encoder.transformer.encoder.layer[-1](hidden, attention_mask=additive)
        out = out[0] if isinstance(out, tuple) else out  # (B, t, D)
        weights = mask.unsqueeze(-1).to(out.dtype)
        return self.model.project_text((out * weights).sum(1) / weights.sum(1).clamp(min=1e-9))

    @torch.no_grad()
    def hidden_states(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}`` ``(B, T)`` -> the states entering MiniLM's last layer
        ``{"hidden": (B, T, D), "mask": (B, T)}``, as :func:`text_features` caches them (eval, no gradient)."""
        encoder = self.model.text_encoder
        training = encoder.training
        states = encoder.eval().transformer(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                            output_hidden_states=True).hidden_states[-2]
        encoder.train(training)
        return {"hidden": states, "mask": tokens["attention_mask"]}

    def scale(self) -> torch.Tensor:
        """The model's clamped ``exp(logit_scale)``."""
        return self.model.scale()

    def forward(self, images: Any, tokens: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image_emb (B, E), text_emb (B, E), scale ())``: the call data parallelism wraps."""
        return self.encode_image(images), self.encode_text(tokens), self.scale()


_PHOTOS: list = []  # [weakref to the photos, preprocessing key, (S, P, 3, s, s) tensor]


def preprocessed_photos(preprocess: Any, photos: Any) -> torch.Tensor:
    """All photos through ``preprocess``, once per photos object: ``(num_skus, per_sku, 3, S, S)`` on CPU.

    Args:
        preprocess: the model's preprocessing (uint8 ``(n, H, W, 3)`` -> float ``(n, 3, S, S)``).
        photos: a uint8 ``(num_skus, per_sku, H, W, 3)`` array or a :class:`ecmm.data.catalogs.PhotoSet`
            (read in chunks of SKUs). Only for catalogs whose preprocessed photos fit in memory:
            a large catalog goes through :class:`StreamedPhotos` instead.
    """
    key = (getattr(preprocess, "image_size", id(preprocess)), tuple(getattr(preprocess, "mean", ())),
           tuple(getattr(preprocess, "std", ())), tuple(photos.shape))
    if not (_PHOTOS and _PHOTOS[0]() is photos and _PHOTOS[1] == key):
        _PHOTOS.clear()  # the previous catalog's tensor goes before this one is built
        per_sku, inputs = int(photos.shape[1]), None
        for start in range(0, len(photos), 128):  # 128 SKUs at a time, into one preallocated tensor
            chunk = preprocess(np.array(photos[start:start + 128]).reshape(-1, *photos.shape[2:]))  # (n * P, 3, S, S)
            if inputs is None:
                inputs = torch.empty(len(photos) * per_sku, *chunk.shape[1:], dtype=chunk.dtype)
            inputs[start * per_sku:start * per_sku + len(chunk)] = chunk
        _PHOTOS[:] = [weakref.ref(photos), key, inputs.view(*photos.shape[:2], *inputs.shape[1:])]
    return _PHOTOS[2]


class StreamedPhotos:
    """The training photos of a catalog too large to preprocess at once, read batch by batch.

    Stands where the cached ``(R * per_sku, ...)`` tensor of :func:`preprocessed_photos` would:
    position ``p`` is photo ``p % per_sku`` of SKU ``rows[p // per_sku]``, and indexing with a
    tensor of positions reads only those SKUs (each once) through the :class:`PhotoSet`,
    preprocesses them and, when ``frozen`` is given, runs the frozen first blocks over the batch
    (no cache over the catalog), so memory follows the batch, not the catalog.

    Args:
        photos: the catalog's photos (``read(row)`` -> uint8 ``(P, H, W, 3)``).
        rows: catalog rows of the training SKUs.
        preprocess: the model's preprocessing.
        frozen: the frozen first image blocks (or None: the preprocessed photos are the inputs).
        device: where ``frozen`` runs (and where its maps are returned).
    """

    def __init__(self, photos: Any, rows: Sequence[int], preprocess: Any, frozen: nn.Module | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.photos, self.rows, self.preprocess = photos, np.asarray(rows, dtype=np.int64), preprocess
        self.per_sku = int(photos.shape[1])
        self.device = torch.device("cpu")  # where positions are given
        self.frozen_device = torch.device(device)
        self.frozen = frozen.to(self.frozen_device).eval() if frozen is not None else None

    def __len__(self) -> int:
        return len(self.rows) * self.per_sku

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions ``(B,)`` -> preprocessed photos ``(B, 3, S, S)`` (or frozen maps ``(B, C, h, w)``)."""
        positions = torch.as_tensor(positions).cpu().numpy()
        if len(positions) == 0:  # a rank whose share of the batch is all replay
            return self[torch.zeros(1, dtype=torch.long)][:0]
        skus, photo = positions // self.per_sku, positions % self.per_sku
        read = {int(sku): self.photos.read(int(self.rows[sku])) for sku in np.unique(skus)}  # (P, H, W, 3) each
        pixels = np.stack([read[int(sku)][int(k)] for sku, k in zip(skus, photo)])  # (B, H, W, 3)
        inputs = self.preprocess(pixels)  # (B, 3, S, S)
        if self.frozen is None:
            return inputs
        with torch.no_grad():  # eval: the loop's train() reaches these shared blocks too
            return self.frozen.eval()(inputs.to(self.frozen_device))


@torch.no_grad()
def frozen_maps(blocks: Sequence[nn.Module], inputs: torch.Tensor, device: torch.device,
                chunk: int = 256) -> torch.Tensor:
    """Run the frozen first ``blocks`` over ``inputs`` ``(P, 3, S, S)`` once -> ``(P, C, h, w)`` on ``device``."""
    frozen = nn.Sequential(*blocks).to(device).eval()
    return torch.cat([frozen(inputs[start:start + chunk].to(device)) for start in range(0, len(inputs), chunk)])


def preprocessed_bytes(preprocess: Any, photos: PhotoSet | np.ndarray) -> int:
    """Bytes of every photo of a catalog after ``preprocess`` (what the cached path holds), from one probe photo."""
    probe = preprocess(np.array(photos[0, 0])[None])  # (1, 3, S, S)
    return len(photos) * int(photos.shape[1]) * probe[0].numel() * probe.element_size()


def photo_inputs(model: Any, view: TrainingView, preprocess: Any, photos: Any, rows: np.ndarray, stream: bool,
                  device: torch.device) -> torch.Tensor | StreamedPhotos:
    """The training photos as the view takes them: a cached tensor, or read per batch when ``stream``.

    Args:
        model: the (copied, locked) model; view: its :class:`TrainingView`.
        preprocess: the model's preprocessing; photos: the catalog's ``(N, P, H, W, 3)`` photos.
        rows: catalog rows of the training SKUs (``R`` of them).
        stream: read each batch's photos through the PhotoSet instead of preprocessing the catalog.
        device: where the frozen blocks run.

    Returns:
        ``(R * P, 3, S, S)`` preprocessed photos or ``(R * P, C, h, w)`` frozen maps, cached; or a
        :class:`StreamedPhotos` giving the same per batch.
    """
    frozen = None
    if view.tail is not None:  # the frozen blocks before the trained tail
        stack = list(model.backbone.blocks)
        frozen = stack[:len(stack) - len(view.tail)]
    if stream:
        readable = photos if isinstance(photos, PhotoSet) else ArrayPhotos(photos)
        return StreamedPhotos(readable, rows, preprocess, None if frozen is None else torch.nn.Sequential(*frozen), device)
    array = photos.array if isinstance(photos, ArrayPhotos) else photos  # one cache per array, whatever wraps it
    inputs = preprocessed_photos(preprocess, array)[torch.as_tensor(rows)].flatten(0, 1)  # (R * P, 3, S, S)
    return inputs if frozen is None else frozen_maps(frozen, inputs, device)  # (R * P, C, h, w), once


_TEXTS: dict[tuple, dict[str, torch.Tensor]] = {}  # MiniLM outputs reused across runs of one session


def text_features(encoder: nn.Module, texts: Sequence[str], hidden: bool,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """MiniLM inputs of the trained part, cached: ``{"features": (N, 384)}`` or ``{"hidden": (N, T, D), "mask": (N, T)}``.

    ``hidden=True`` keeps the hidden states entering the last transformer layer (that layer trains).
    """
    key = (weights_digest(encoder), tuple(texts), hidden)
    if key not in _TEXTS:
        if len(_TEXTS) >= 8:
            _TEXTS.clear()
        encoder = encoder.to(device).eval()
        _TEXTS[key] = {name: value.cpu() for name, value in _encode(encoder, list(texts), hidden, device).items()}
    return {name: value.to(device) for name, value in _TEXTS[key].items()}


@torch.no_grad()
def _encode(encoder: Any, texts: list[str], hidden: bool, device: torch.device,
            chunk: int = 128) -> dict[str, torch.Tensor]:
    """MiniLM over ``texts`` in chunks of similar length (short titles are not padded to descriptions)."""
    tokens = {key: value.to(device) for key, value in encoder.tokenize(texts).items()}  # (N, T)
    lengths = tokens["attention_mask"].sum(1)
    order = torch.argsort(lengths, stable=True)
    pieces = []
    for start in range(0, len(texts), chunk):
        rows = order[start:start + chunk]
        keep = int(lengths[rows].max())
        ids, mask = tokens["input_ids"][rows, :keep], tokens["attention_mask"][rows, :keep]
        if hidden:
            states = encoder.transformer(input_ids=ids, attention_mask=mask,
                                         output_hidden_states=True).hidden_states[-2]  # (b, keep, D)
            pieces.append(F.pad(states, (0, 0, 0, tokens["input_ids"].shape[1] - keep)))
        else:
            pieces.append(encoder(ids, mask))  # (b, D)
    stacked = torch.empty_like(torch.cat(pieces))
    stacked[order] = torch.cat(pieces)
    return {"hidden": stacked, "mask": tokens["attention_mask"]} if hidden else {"features": stacked}


def text_inputs(model: Any, view: TrainingView, texts: list[str], device: torch.device) -> Any:
    """What the view's ``encode_text`` takes for every caption: cached features / states, or the strings.

    Shapes:
        ``N`` strings -> ``{"features": (N, 384)}``, ``{"hidden": (N, T, D), "mask": (N, T)}`` or the ``N`` strings.
    """
    if view.text == "tokens":
        return list(texts)
    cache = text_features(model.text_encoder, texts, view.text == "hidden", device)
    return cache["features"] if view.text == "features" else cache


def pad_hidden(cache: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    """Zero-pad cached hidden states ``(N, T, D)`` and mask ``(N, T)`` to ``length`` tokens."""
    extra = length - cache["mask"].shape[1]
    return {"hidden": F.pad(cache["hidden"], (0, 0, 0, extra)), "mask": F.pad(cache["mask"], (0, extra))}


class PairBatches:
    """Endless seeded global batches of (photo, caption) pairs of a shop, this rank's shard of each.

    ``images`` ``(P, ...)`` are the photos (or their cached maps, or a :class:`StreamedPhotos` that
    reads them per batch), ``per_sku`` photos per SKU;
    ``texts`` hold ``2 * num_skus`` captions (titles, then descriptions) as cached features, cached
    states or strings (tokenised here); ``source`` = ``(images, texts, name ids)`` of ``replay``
    replayed pairs per batch.

    Every rank draws the same global batch; the images and texts are this rank's rows and the
    caption ids are the global batch's (the loss sees the gathered batch).
    """

    def __init__(self, images: torch.Tensor, texts: Any, per_sku: int, num_skus: int, batch_size: int,
                 replay: int, source: tuple | None, tokenizer: Any, part: slice, seed: int) -> None:
        self.images, self.texts, self.per_sku, self.num_skus = images, texts, per_sku, num_skus
        self.batch_size, self.replay, self.source, self.tokenizer, self.part = batch_size, replay, source, tokenizer, part
        self.generator = torch.Generator().manual_seed(seed)

    def _texts(self, texts: Any, rows: torch.Tensor) -> Any:
        if isinstance(texts, dict):
            return {key: value[rows.to(value.device)] for key, value in texts.items()}
        if isinstance(texts, list):
            return [texts[int(row)] for row in rows]
        return texts[rows.to(texts.device)]

    def __iter__(self):
        mine = torch.arange(self.batch_size + self.replay)[self.part]  # this rank's positions in the global batch
        while True:
            pair = torch.randperm(len(self.images), generator=self.generator)[:self.batch_size]  # photo positions
            sku = pair // self.per_sku  # (B,) position in the subset
            caption = sku + self.num_skus * torch.randint(2, (len(pair),), generator=self.generator)  # title / description
            texts, ids = self._texts(self.texts, caption), sku
            images = self.images[pair[mine[mine < len(pair)]].to(self.images.device)]  # only this rank's photos
            if self.replay:
                source_images, source_texts, source_ids = self.source
                icon = torch.randperm(len(source_images), generator=self.generator)[:self.replay]
                replayed = mine[mine >= len(pair)] - len(pair)
                replayed = icon[replayed[replayed < len(icon)]]
                images = torch.cat([images, source_images[replayed.to(source_images.device)].to(images.device)])
                texts = _concat(texts, self._texts(source_texts, icon))
                ids = torch.cat([ids, self.num_skus + source_ids[icon]])
            texts = _slice(texts, self.part)
            tokens = self.tokenizer(texts) if isinstance(texts, list) else texts
            yield {"images": images, "tokens": tokens, "caption_ids": ids}


def _concat(first: Any, second: Any) -> Any:
    if isinstance(first, dict):
        return {key: torch.cat([first[key], second[key]]) for key in first}
    return first + second if isinstance(first, list) else torch.cat([first, second])


def _slice(texts: Any, part: slice) -> Any:
    return {key: value[part] for key, value in texts.items()} if isinstance(texts, dict) else texts[part]
