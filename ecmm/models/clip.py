"""CLIP-style dual encoders: one protocol, two implementations, one factory, one loader.

:func:`create_clip_model` returns ``(model, preprocess, tokenizer)`` for every kind, and every model
is a :class:`ClipLike` (see :mod:`ecmm.models.protocol`): ``encode_image(images)`` and
``encode_text(tokens)`` give L2-normalised ``(B, E)`` embeddings, ``model.preprocess`` and
``model.tokenizer`` travel with the model, ``lock_image_tower(unlocked_groups)`` /
``lock_text_tower(unlocked_layers)`` follow open_clip's counting, ``param_groups`` gives per-part
learning rates and ``save`` writes a folder that :func:`load_clip_model` reads.

- ``"ecmm-clip"`` (offline, :class:`ClipModel`): the kit's pretrained CNN + a linear projection and
  all-MiniLM-L6-v2 (frozen by default) + a linear projection, pretrained contrastively on the
  source-domain icons by ``ecmm prepare``.
- any open_clip name (``"ViT-B-32"``, ``"MobileCLIP-S1"``, ...; :class:`OpenClipModel`): built by
  open_clip with a pretrained tag, a local checkpoint file, or random weights.
- a folder written by ``model.save``.

Models only load: nothing here builds a cached asset (that is ``ecmm prepare``'s job).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ecmm.artifacts import CARD_NAME, ArtifactError, assets_home, read_card
from ecmm.device import get_device
from ecmm.models.offline_clip import (OFFLINE_CLIP_NAME, ClipConfig, ClipModel, ClipTokenizer, build_offline_clip,
                                      load_offline_clip)
from ecmm.models.openclip import (DEFAULT_PRETRAINED_TAGS, OPEN_CLIP_KIND, OpenClipModel, OpenClipPreprocess,
                                  create_open_clip, load_open_clip)
from ecmm.models.protocol import ClipLike, move_tokens

__all__ = [
    "ClipLike", "ClipConfig", "ClipModel", "ClipTokenizer", "OpenClipModel", "OpenClipPreprocess",
    "build_offline_clip", "create_clip_model", "open_model", "parse_model_spec", "load_clip_model", "move_tokens", "embed_images", "embed_texts",
    "cached_text_features", "save_clip_checkpoint", "load_clip_checkpoint", "pretrained_clip_dir", "count_trainable",
]

def pretrained_clip_dir() -> Path:
    """``ECMM_HOME/assets/clip``: the offline model's pretrained weights (built by ``ecmm prepare``)."""
    return assets_home() / "clip"


def load_clip_model(directory: str | Path, device: str | torch.device | None = None) -> ClipLike:
    """Load any folder written by ``model.save`` (or by the kit's older offline code).

    The card's ``kind`` says which model it holds (``"ecmm-clip"`` or ``"open_clip"``; a card
    without one is an older offline checkpoint). Files are checked against the card first.

    Args:
        directory: the folder.
        device: where to put the model; None picks the best available.

    Returns:
        The model in eval mode.

    Raises:
        ArtifactError: the folder is missing, unfinished or damaged.
    """
    card = read_card(directory)
    kind = card.get("kind", OFFLINE_CLIP_NAME)
    if kind == OPEN_CLIP_KIND:
        model = load_open_clip(directory, card)
    elif kind == OFFLINE_CLIP_NAME:
        model = load_offline_clip(directory, card)
    else:
        raise ValueError(f"{directory} holds a model of kind {kind!r}: expected 'ecmm-clip' or 'open_clip'")
    return model.to(get_device(device)).eval()


def create_clip_model(
    name: str = "ecmm-clip", pretrained: bool | str | None = True, device: str | torch.device | None = None
) -> tuple[ClipLike, Any, Any]:
    """Create a CLIP-style model with its image preprocessing and tokenizer.

    Args:
        name: ``"ecmm-clip"`` (offline), an open_clip architecture (``open_clip.list_models()``),
            or a folder written by ``model.save``.
        pretrained: offline: ``True`` loads the kit's contrastively pretrained weights
            (``ECMM_HOME/assets/clip``), ``False`` the pretrained CNN + MiniLM with fresh
            projections, ``"scratch"`` a randomly initialised CNN. open_clip: ``True`` picks a
            default tag (``DEFAULT_PRETRAINED_TAGS``), a string is a tag or a local ``.pt`` / ``.bin`` /
            ``.safetensors`` file, ``False`` / ``None`` random weights. A folder: ``True``.
        device: where to put the model; None picks the best available.

    Returns:
        ``(model, model.preprocess, model.tokenizer)``: ``model.encode_image(preprocess(images))`` and
        ``model.encode_text(tokenizer(texts))`` give normalised ``(N, E)`` embeddings.

    Raises:
        ArtifactError: the offline pretrained weights are not built (run ``ecmm prepare``).
        ValueError: an unknown name, or a ``pretrained`` value that does not fit the name.
    """
    device = get_device(device)
    if name == OFFLINE_CLIP_NAME:
        if pretrained is True:
            folder = pretrained_clip_dir()
            if not (folder / CARD_NAME).is_file():
                raise ArtifactError(folder, "not built", command="ecmm prepare")
            model = load_clip_model(folder, device="cpu")
        elif pretrained in (False, "scratch"):
            model = build_offline_clip(ClipConfig(), pretrained_backbone=pretrained is False)
        else:
            raise ValueError(f"offline pretrained must be True, False or 'scratch'; got {pretrained!r}")
    elif Path(name).is_dir():
        if pretrained is not True:
            raise ValueError(f"{name} is a saved model folder, it carries its weights: pass pretrained=True")
        model = load_clip_model(name, device="cpu")
    else:
        import open_clip

        known = open_clip.list_models()
        if name not in known:
            close = difflib.get_close_matches(name, [OFFLINE_CLIP_NAME, *known], n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown CLIP model {name!r}: use 'ecmm-clip', a folder written by model.save, or a "
                             f"name from open_clip.list_models().{hint}")
        if pretrained is True:
            tag = DEFAULT_PRETRAINED_TAGS.get(name) or next(iter(open_clip.list_pretrained_tags_by_model(name)), None)
            if tag is None:
                raise ValueError(f"{name!r} has no pretrained tag: pass pretrained='<checkpoint file>' or False")
        elif pretrained in (False, None):
            tag = None
        elif isinstance(pretrained, (str, Path)):
            tag = str(pretrained)
        else:
            raise ValueError(f"pretrained must be True, False, a tag or a checkpoint file; got {pretrained!r}")
        model = create_open_clip(name, tag)
    model = model.to(device).eval()
    return model, model.preprocess, model.tokenizer


def parse_model_spec(spec: str) -> tuple[str, bool | str]:
    """``(name, pretrained)`` for :func:`create_clip_model` from one string (``--model``, ``ECMM_MODEL``).

    - ``"ecmm-clip"``: the kit's offline model, pretrained weights;
    - ``"ViT-B-32"`` / ``"ViT-B-32:laion2b_s34b_b79k"``: an open_clip name, its default or a given tag;
    - ``"ViT-B-32:path/to/weights.safetensors"``: an open_clip name with a local checkpoint;
    - ``"path/to/arch.json:path/to/weights.safetensors"``: an open_clip model config (registered
      with ``open_clip.add_model_config``; the file's stem is the name) and its checkpoint;
    - a folder written by ``model.save`` (a fine-tuned model).
    """
    spec = spec.strip()
    if not spec:
        raise ValueError("empty model name: use 'ecmm-clip', an open_clip name such as 'ViT-B-32[:tag]', "
                         "or a folder written by model.save")
    if spec == OFFLINE_CLIP_NAME or Path(spec).is_dir():
        return spec, True
    name, _, tag = spec.partition(":")
    if name.endswith(".json"):
        config = Path(name).expanduser()
        if not config.is_file():
            raise ValueError(f"model config {config} does not exist: pass an open_clip model config JSON")
        import open_clip

        open_clip.add_model_config(config)
        name = config.stem
    return name, (tag or True)


def open_model(spec: str | None = None, device: str | torch.device | None = None) -> tuple[ClipLike, Any, Any]:
    """The model a command or notebook runs on: ``spec`` or ``ECMM_MODEL`` (default ``"ecmm-clip"``).

    Returns:
        ``(model, model.preprocess, model.tokenizer)`` as :func:`create_clip_model` gives them.
    """
    from ecmm.data.catalogs import model_spec

    name, pretrained = parse_model_spec(model_spec(spec))
    return create_clip_model(name, pretrained=pretrained, device=device)


def save_clip_checkpoint(model: ClipLike, directory: str | Path, card: dict[str, Any]) -> Path:
    """``model.save(directory, card)`` (kept for callers written before the protocol)."""
    return model.save(directory, card)


def load_clip_checkpoint(directory: str | Path, device: str | torch.device | None = None) -> tuple[ClipLike, dict]:
    """``(load_clip_model(directory, device), card)`` (kept for callers written before the protocol)."""
    return load_clip_model(directory, device), read_card(directory)


def _split_inputs(model: ClipLike, inputs: tuple, what: str) -> tuple[Any, Any]:
    if len(inputs) == 1:
        return getattr(model, "preprocess" if what == "images" else "tokenizer"), inputs[0]
    if len(inputs) == 2:
        return inputs
    raise TypeError(f"pass embed_{what}(model, {what}) (or the older embed_{what}(model, "
                    f"{'preprocess' if what == 'images' else 'tokenizer'}, {what}))")


@torch.no_grad()
def embed_images(model: ClipLike, *inputs: Any, batch_size: int = 256,
                 device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised image embeddings: ``embed_images(model, images)`` uses ``model.preprocess``.

    The older form ``embed_images(model, preprocess, images)`` is accepted too.

    Shapes:
        uint8 images ``(N, H, W, 3)`` -> ``(N, E)`` on CPU.
    """
    preprocess, images = _split_inputs(model, inputs, "images")
    device = get_device(device)
    model.to(device).eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if isinstance(batch, np.ndarray) and not batch.flags.writeable:
            batch = np.array(batch)  # memory-mapped photos are read-only; torch wants a writable copy
        chunks.append(model.encode_image(preprocess(batch).to(device)).cpu())
    return torch.cat(chunks)


@torch.no_grad()
def embed_texts(model: ClipLike, *inputs: Any, batch_size: int = 256,
                device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised text embeddings: ``embed_texts(model, texts)`` uses ``model.tokenizer``.

    The older form ``embed_texts(model, tokenizer, texts)`` is accepted too.

    Shapes:
        ``N`` strings -> ``(N, E)`` on CPU.
    """
    tokenizer, texts = _split_inputs(model, inputs, "texts")
    device = get_device(device)
    model.to(device).eval()
    texts = list(texts)
    chunks = [model.encode_text(move_tokens(tokenizer(texts[start:start + batch_size]), device)).cpu()
              for start in range(0, len(texts), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, model.embed_dim)


@torch.no_grad()
def cached_text_features(model: ClipModel, texts: Sequence[str], device: str | torch.device | None = None,
                         batch_size: int = 256) -> torch.Tensor:
    """The offline model's MiniLM features of ``texts`` (before the projection), memoised by the model.

    Returns:
        ``(N, 384)`` tensor on ``device``.
    """
    device = get_device(device)
    model.text_encoder.to(device).eval()
    texts = list(texts)
    chunks = [model.text_features(move_tokens(model.tokenizer(texts[start:start + batch_size]), device))
              for start in range(0, len(texts), batch_size)]
    return torch.cat(chunks).to(device)


def count_trainable(module: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (a quick check after locking)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
