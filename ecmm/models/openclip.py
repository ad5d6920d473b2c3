"""Any open_clip model behind the kit's protocol (:class:`ecmm.models.protocol.ClipLike`).

open_clip builds every architecture it knows (``open_clip.list_models()``) with or without weights;
:func:`create_open_clip` takes a pretrained tag, a local checkpoint file or nothing (random init),
and :meth:`OpenClipModel.save` writes a folder that open_clip itself can read back
(``local-dir:`` with ``open_clip_config.json`` + ``model.safetensors``) plus the kit's card.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ecmm.artifacts import write_artifact
from ecmm.models.protocol import build_param_groups, check_unlocked

__all__ = ["OPEN_CLIP_KIND", "DEFAULT_PRETRAINED_TAGS", "OpenClipPreprocess", "OpenClipModel", "create_open_clip",
           "load_open_clip"]

OPEN_CLIP_KIND = "open_clip"
DEFAULT_PRETRAINED_TAGS: dict[str, str] = {"ViT-B-32": "laion2b_s34b_b79k", "MobileCLIP-S1": "datacompdr"}
MAX_LOGIT_SCALE = 100.0  # exp(logit_scale) is clamped to this, as in CLIP
IMAGE_PROJECTIONS = ("visual.proj", "visual.head.proj.weight", "visual.head.proj.bias",  # ViT, timm trunk
                     "visual.attnpool.c_proj.weight", "visual.attnpool.c_proj.bias")  # open_clip's ResNets
TEXT_PROJECTIONS = ("text_projection", "text_projection.weight", "text_projection.bias", "text.text_projection",
                    "text.proj.weight", "text.proj.bias")
HEAD_NAMES = ("logit_scale", "logit_bias", *IMAGE_PROJECTIONS, *TEXT_PROJECTIONS)


class OpenClipPreprocess:
    """Apply an open_clip (torchvision) transform to uint8 arrays or PIL images.

    Shapes:
        ``(N, H, W, 3)`` uint8 array or tensor / PIL image / list of PIL images -> ``(N, 3, S, S)`` float.
    """

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __repr__(self) -> str:
        return f"OpenClipPreprocess({self.transform})"

    def __call__(self, images: Any) -> torch.Tensor:
        from PIL import Image

        if isinstance(images, Image.Image):
            images = [images]
        if not isinstance(images, (list, tuple)):
            array = images.cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
                raise ValueError("pass uint8 RGB images shaped (N, H, W, 3) or PIL images")
            images = [Image.fromarray(image) for image in array]
        if not images:
            raise ValueError("Got an empty list of images: pass at least one image.")
        return torch.stack([self.transform(image.convert("RGB")) for image in images])


class OpenClipModel(nn.Module):
    """An open_clip model with the kit's verbs.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP``.
        name: its architecture name (``"ViT-B-32"``, ...).
        config: the open_clip model config it was built from (saved beside the weights).
        preprocess: its inference transform wrapped in :class:`OpenClipPreprocess`.
        tokenizer: its open_clip tokenizer (``list[str] -> (N, context_length)`` int64).
    """

    def __init__(self, model: nn.Module, name: str, config: Mapping[str, Any], preprocess: Any, tokenizer: Any) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.strong_tower = "image"  # fine-tuning keeps it locked (LiT, Zhai et al. 2022)
        self.config = dict(config)
        self.embed_dim = int(config["embed_dim"])
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to 100 (a scalar tensor)."""
        return self.model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(B, 3, S, S) -> (B, E)``."""
        return self.model.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(B, context_length)`` token ids -> ``(B, E)``."""
        return self.model.encode_text(tokens, normalize=normalize)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image_emb (B, E), text_emb (B, E), scale ())``."""
        return self.encode_image(images), self.encode_text(tokens), self.scale()

    def image_blocks(self) -> list[nn.Module]:
        """The image trunk's blocks: a ViT's residual blocks (outputs ``(B, T, D)`` tokens), a ResNet's layers."""
        visual = self.model.visual
        transformer = getattr(visual, "transformer", None)
        if transformer is not None and hasattr(transformer, "resblocks"):
            return list(transformer.resblocks)
        layers = [getattr(visual, f"layer{i}", None) for i in range(1, 5)]
        if all(layer is not None for layer in layers):
            return layers
        trunk = getattr(visual, "trunk", visual)
        for name in ("stages", "blocks", "layers"):
            if isinstance(getattr(trunk, name, None), (nn.Sequential, nn.ModuleList)):
                return list(getattr(trunk, name))
        raise ValueError(f"cannot find the blocks of {type(visual).__name__}")

    # --- locking (open_clip's own lock methods) --------------------------------------------
    def _image_group_count(self) -> int | None:
        visual = self.model.visual
        if hasattr(visual, "transformer") and hasattr(visual, "ln_post"):
            return len(visual.transformer.resblocks) + 2  # stem, blocks but the last, last + ln_post, proj
        if hasattr(visual, "attnpool"):
            return 0  # open_clip's ModifiedResNet locks only as a whole
        return None

    def _text_group_count(self) -> int | None:
        text = getattr(self.model, "text", self.model)
        transformer = getattr(text, "transformer", None)
        if transformer is None or not hasattr(transformer, "resblocks"):
            return None
        return len(transformer.resblocks) + 1 + int(getattr(text, "text_projection", None) is not None)

    def _projections(self, tower: str) -> list[nn.Parameter]:
        names = IMAGE_PROJECTIONS if tower == "image" else TEXT_PROJECTIONS
        return [parameter for name, parameter in self.model.named_parameters() if name in names]

    def lock_image_tower(self, unlocked_groups: int = 0, *, lock_projection: bool = False) -> "OpenClipModel":
        """Freeze the visual tower except its last ``unlocked_groups`` groups: open_clip's
        ``lock_image_tower(unlocked_groups, freeze_bn_stats=True)``; then the projection (open_clip's
        last group) is made trainable, or frozen when ``lock_projection``."""
        check_unlocked(unlocked_groups, self._image_group_count(), "unlocked_groups", lock_projection)
        self.model.lock_image_tower(unlocked_groups=unlocked_groups, freeze_bn_stats=True)
        for parameter in self._projections("image"):
            parameter.requires_grad_(not lock_projection)
        return self

    def unlock_image_tower(self) -> "OpenClipModel":
        """Make the visual tower (projection included) trainable."""
        self.model.visual.requires_grad_(True)
        return self

    def _text_parameters(self) -> list[nn.Parameter]:
        return [parameter for name, parameter in self.model.named_parameters()
                if not name.startswith("visual.") and name not in ("logit_scale", "logit_bias")]

    def lock_text_tower(self, unlocked_layers: int = 0, *, lock_projection: bool = False) -> "OpenClipModel":
        """Freeze the text tower except its last ``unlocked_layers`` groups: open_clip's
        ``lock_text_tower(unlocked_layers)`` (groups: embeddings, each block, the last block with
        the final layer norm, the projection); then the projection is made trainable, or frozen when
        ``lock_projection``."""
        check_unlocked(unlocked_layers, self._text_group_count(), "unlocked_layers", lock_projection)
        for parameter in self._text_parameters():
            parameter.requires_grad_(False)  # open_clip leaves text parts outside its groups untouched
        self.model.lock_text_tower(unlocked_layers=unlocked_layers)
        for parameter in self._projections("text"):
            parameter.requires_grad_(not lock_projection)
        return self

    def unlock_text_tower(self) -> "OpenClipModel":
        """Make the text tower (projection included) trainable."""
        for parameter in self._text_parameters():
            parameter.requires_grad_(True)
        return self

    def param_groups(self, head_lr: float, image_lr: float, text_lr: float,
                     weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups of trainable parameters: ``"head"`` (projections, ``logit_scale``),
        ``"image"`` (the visual trunk), ``"text"`` (the text trunk)."""
        def part_of(name: str) -> str:
            name = name.removeprefix("model.")
            return "head" if name in HEAD_NAMES else \
                "image" if name.startswith("visual.") else "text"

        return build_param_groups(self.named_parameters(), part_of,
                                  {"head": head_lr, "image": image_lr, "text": text_lr}, weight_decay)

    # --- saving ----------------------------------------------------------------------------
    def save(self, directory: str | Path, card: Mapping[str, Any]) -> Path:
        """Write ``model.safetensors`` + ``open_clip_config.json`` and the card, atomically.

        The folder is also an open_clip ``local-dir:`` model. ``kind``, ``model_name``, ``config``
        and ``preprocess`` are added to the card.
        """
        import open_clip
        from safetensors.torch import save_file

        state = {key: value.detach().cpu().contiguous() for key, value in self.model.state_dict().items()}
        preprocess_cfg = open_clip.get_model_preprocess_cfg(self.model)
        full_card = {**card, "kind": OPEN_CLIP_KIND, "model_name": self.name, "config": self.config,
                     "preprocess": preprocess_cfg}

        def write_files(folder: Path) -> None:
            save_file(state, str(folder / "model.safetensors"))
            (folder / "open_clip_config.json").write_text(json.dumps(
                {"model_cfg": self.config, "preprocess_cfg": preprocess_cfg}, indent=2, default=list))

        return write_artifact(directory, write_files, full_card)


def create_open_clip(name: str, pretrained: str | None) -> OpenClipModel:
    """Build an open_clip architecture on the CPU, in eval mode.

    Args:
        name: a name from ``open_clip.list_models()``.
        pretrained: a pretrained tag, a local ``.pt`` / ``.bin`` / ``.safetensors`` file, or None
            (random init, nothing downloaded).
    """
    import open_clip

    if pretrained is not None and not Path(pretrained).is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise ValueError(f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of {name!r} "
                             f"(tags: {tags or 'none'})")
    config = open_clip.get_model_config(name)
    disabled = logging.root.manager.disable
    if pretrained is None:  # random init is what was asked: open_clip's warning about it is noise here
        logging.disable(max(disabled, logging.WARNING))
    try:
        model, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained, device="cpu")
    finally:
        logging.disable(disabled)
    return OpenClipModel(model, name, config, OpenClipPreprocess(transform), open_clip.get_tokenizer(name)).eval()


def load_open_clip(directory: str | Path, card: Mapping[str, Any]) -> OpenClipModel:
    """Load a folder written by :meth:`OpenClipModel.save` (files already checked by ``read_card``)."""
    import open_clip

    source = f"local-dir:{Path(directory).resolve()}"
    model, _, transform = open_clip.create_model_and_transforms(source, device="cpu")
    return OpenClipModel(model, str(card["model_name"]), card["config"], OpenClipPreprocess(transform),
                         open_clip.get_tokenizer(source)).eval()
