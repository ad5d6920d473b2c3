"""CLIP-style dual encoders: the kit's offline model and open_clip hub models behind one factory.

:func:`create_clip_model` returns ``(model, preprocess, tokenizer)`` for both kinds, and both
models speak open_clip's verbs: ``encode_image(images)`` and ``encode_text(tokens)`` (L2-normalised
``(B, E)`` embeddings), ``lock_image_tower()`` / ``lock_text_tower()`` and their ``unlock_*``
counterparts, and a learnable ``logit_scale`` (log of the inverse temperature).

- ``"ecmm-clip"`` (offline): image tower = the kit's pretrained CNN + a linear projection; text
  tower = all-MiniLM-L6-v2 (frozen by default) + a linear projection.  Its weights come from
  contrastive pretraining on the source-domain icons (:mod:`ecmm.pretraining.clip`).
- any open_clip name (``"ViT-B-32"``, ``"MobileCLIP-S1"``, ...): ``open_clip.create_model_and_transforms``
  with a pretrained tag (``True`` picks a default tag) or a local checkpoint file path.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecmm.device import get_device

__all__ = [
    "ClipConfig", "ClipModel", "ClipTokenizer", "HubClipModel", "HubPreprocess",
    "create_clip_model", "load_clip_checkpoint", "save_clip_checkpoint", "embed_images", "embed_texts",
    "cached_text_features",
]

OFFLINE_CLIP_MODELS: tuple[str, ...] = ("ecmm-clip",)
DEFAULT_HUB_TAGS: dict[str, str] = {"ViT-B-32": "laion2b_s34b_b79k", "MobileCLIP-S1": "datacompdr"}


@dataclass(frozen=True)
class ClipConfig:
    """Architecture of the offline CLIP model."""

    embed_dim: int = 128  # size of the shared image/text embedding space
    init_temperature: float = 0.07  # CLIP's initial temperature; logit_scale = log(1 / T)
    max_logit_scale: float = 100.0  # logit_scale.exp() is clamped to this (as in CLIP)
    context_length: int = 32  # tokens per caption (titles and names are short)
    image_backbone: str = "ecmm-cnn"  # offline backbone name for create_image_backbone

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or not 0 < self.init_temperature < 1:
            raise ValueError("embed_dim must be >= 1 and init_temperature in (0, 1).")


class ClipTokenizer:
    """Callable tokenizer for the offline model: ``tokenizer(texts) -> {input_ids, attention_mask}``.

    Shapes:
        output tensors: ``(N, L)`` with ``L <= context_length`` (padded to the longest text).
    """

    def __init__(self, hf_tokenizer: Any, context_length: int = 32) -> None:
        self.hf_tokenizer = hf_tokenizer
        self.context_length = context_length

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        encoded = self.hf_tokenizer(list(texts), padding=True, truncation=True,
                                    max_length=self.context_length, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


class ClipModel(nn.Module):
    """The offline dual encoder.

    Args:
        backbone: image feature extractor ``(B, 3, S, S) -> (B, backbone.num_features)``.
        text_encoder: MiniLM ``TextEncoder`` with ``forward(input_ids, attention_mask) -> (B, 384)``.
        config: :class:`ClipConfig`.
    """

    def __init__(self, backbone: nn.Module, text_encoder: nn.Module, config: ClipConfig = ClipConfig()) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.text_encoder = text_encoder
        text_dim = int(getattr(text_encoder, "embedding_dim", 384))
        self.image_projection = nn.Linear(backbone.num_features, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        self.lock_text_tower()  # MiniLM is frozen by default (LiT-style)

    # --- encoders -------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings. Shapes: ``(B, 3, S, S)`` preprocessed -> ``(B, embed_dim)``."""
        embeddings = self.image_projection(self.backbone(images))
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def text_features(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """MiniLM sentence features before the projection: ``(B, L)`` tokens -> ``(B, 384)``.

        Runs without gradients while the text tower is locked.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.text_tower_trainable):
            return self.text_encoder(tokens["input_ids"], tokens["attention_mask"])

    def project_text(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Project cached :meth:`text_features` into the shared space: ``(B, 384) -> (B, E)``."""
        embeddings = self.text_projection(features)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def encode_text(self, tokens: Mapping[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Text embeddings from the tokenizer's output: ``(B, L)`` -> ``(B, embed_dim)``."""
        return self.project_text(self.text_features(tokens), normalize)

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to ``config.max_logit_scale`` (a scalar tensor)."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images: torch.Tensor, tokens: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image_emb (B, E), text_emb (B, E), scale ())`` for :func:`ecmm.losses.clip_loss`."""
        return self.encode_image(images), self.encode_text(tokens), self.scale()

    # --- locking ---------------------------------------------------------------------------
    @property
    def text_tower_trainable(self) -> bool:
        """Whether any MiniLM parameter is trainable."""
        return any(p.requires_grad for p in self.text_encoder.parameters())

    def lock_image_tower(self, lock_projection: bool = False) -> "ClipModel":
        """Freeze the CNN (batch-norm statistics too); the projection stays trainable unless asked."""
        self.backbone.freeze() if hasattr(self.backbone, "freeze") else self.backbone.requires_grad_(False)
        self.image_projection.requires_grad_(not lock_projection)
        return self.train(self.training)

    def unlock_image_tower(self) -> "ClipModel":
        """Make the CNN and its projection trainable."""
        self.backbone.requires_grad_(True)
        self.image_projection.requires_grad_(True)
        return self.train(self.training)

    def lock_text_tower(self, lock_projection: bool = False) -> "ClipModel":
        """Freeze MiniLM (and optionally its projection)."""
        self.text_encoder.requires_grad_(False)
        self.text_projection.requires_grad_(not lock_projection)
        return self.train(self.training)

    def unlock_text_tower(self, last_layers: int | None = None) -> "ClipModel":
        """Make MiniLM trainable: all of it, or only its last ``last_layers`` transformer layers."""
        if last_layers is None:
            self.text_encoder.requires_grad_(True)
        else:
            layers = [m for m in self.text_encoder.modules() if isinstance(m, nn.ModuleList)]
            if not layers or not 0 <= last_layers <= len(layers[0]):
                raise ValueError(f"last_layers must be between 0 and the number of MiniLM layers; got {last_layers}")
            self.text_encoder.requires_grad_(False)
            for layer in list(layers[0])[len(layers[0]) - last_layers:]:
                layer.requires_grad_(True)
        self.text_projection.requires_grad_(True)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "ClipModel":
        """Train mode everywhere except frozen parts (they keep dropout / batch-norm off)."""
        super().train(mode)
        if mode and not self.text_tower_trainable:
            self.text_encoder.eval()
        if mode and hasattr(self.backbone, "train"):
            self.backbone.train(mode)  # the kit's backbone keeps frozen batch norms in eval mode
        return self


class HubPreprocess:
    """Apply an open_clip (torchvision) transform to uint8 arrays or PIL images.

    Shapes:
        ``(N, H, W, 3)`` uint8 / list of PIL images -> ``(N, 3, S, S)`` float.
    """

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, images: Any) -> torch.Tensor:
        from PIL import Image

        if isinstance(images, Image.Image):
            images = [images]
        if not isinstance(images, (list, tuple)):
            array = np.asarray(images)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
                raise ValueError("pass uint8 RGB images shaped (N, H, W, 3) or PIL images")
            images = [Image.fromarray(image) for image in array]
        return torch.stack([self.transform(image.convert("RGB")) for image in images])


class HubClipModel(nn.Module):
    """An open_clip model behind the kit's verbs (normalised encoders, lock/unlock)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to 100 (a scalar tensor)."""
        return self.model.logit_scale.exp().clamp(max=100.0)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(B, 3, S, S) -> (B, E)``."""
        return self.model.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(B, context_length)`` token ids -> ``(B, E)``."""
        return self.model.encode_text(tokens, normalize=normalize)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(tokens), self.scale()

    def lock_image_tower(self, lock_projection: bool = True) -> "HubClipModel":
        """Freeze the visual tower (open_clip's own ``lock_image_tower``)."""
        self.model.lock_image_tower()
        return self

    def unlock_image_tower(self) -> "HubClipModel":
        self.model.visual.requires_grad_(True)
        return self

    def lock_text_tower(self, lock_projection: bool = True) -> "HubClipModel":
        """Freeze the text tower (open_clip's own ``lock_text_tower``)."""
        self.model.lock_text_tower()
        return self

    def unlock_text_tower(self, last_layers: int | None = None) -> "HubClipModel":
        for name, parameter in self.model.named_parameters():
            if not name.startswith("visual.") and name != "logit_scale":
                parameter.requires_grad_(True)
        return self


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_clip_checkpoint(model: ClipModel, directory: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (MiniLM weights only if they were trained) + ``card.json``.

    Args:
        model: the offline model.
        directory: output folder (created).
        card: recipe / data / metrics to record; ``config``, ``text_trained`` and ``sha256`` are added.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    from ecmm.config import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text_trained = bool(card.get("text_trained", False))
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()
             if text_trained or not key.startswith("text_encoder.")}
    weights = directory / "model.safetensors"
    with atomic_write(weights) as temporary:
        save_file(state, str(temporary))
    full_card = {**card, "config": asdict(model.config), "text_trained": text_trained, "sha256": _sha256(weights)}
    with atomic_write(directory / "card.json") as temporary:
        Path(temporary).write_text(json.dumps(full_card, indent=2, default=str))
    return directory


def load_clip_checkpoint(directory: str | Path, device: str | torch.device | None = None) -> tuple[ClipModel, dict]:
    """Load a :class:`ClipModel` written by :func:`save_clip_checkpoint` (sha256-checked).

    Returns:
        ``(model in eval mode, card)``.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, card_path = directory / "model.safetensors", directory / "card.json"
    if not weights.exists() or not card_path.exists():
        raise FileNotFoundError(f"no CLIP checkpoint in {directory.name!r}: run `ecmm prepare` "
                                "or `python data_scripts/pretrain_clip.py` to build it")
    card = json.loads(card_path.read_text())
    if _sha256(weights) != card.get("sha256"):
        raise ValueError(f"{weights.name} does not match its card's sha256; delete the folder and rebuild it")
    model = _build_offline(ClipConfig(**card["config"]), pretrained_backbone=False)
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if unexpected or any(not key.startswith("text_encoder.") for key in missing):
        raise ValueError(f"checkpoint does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(get_device(device)).eval(), card


def _build_offline(config: ClipConfig, pretrained_backbone: bool) -> ClipModel:
    from ecmm.models.image import create_image_backbone
    from ecmm.models.text import load_text_encoder

    backbone, _ = create_image_backbone(config.image_backbone, pretrained=pretrained_backbone, device="cpu")
    return ClipModel(backbone, load_text_encoder(device="cpu"), config)


def create_clip_model(
    name: str = "ecmm-clip", pretrained: bool | str = True, device: str | torch.device | None = None
) -> tuple[nn.Module, Any, Any]:
    """Create a CLIP-style model with its image preprocessing and tokenizer.

    Args:
        name: ``"ecmm-clip"`` (offline) or an open_clip model name (``open_clip.list_models()``).
        pretrained: offline: ``True`` loads the kit's contrastively pretrained weights (built and
            cached on first use), ``False`` gives the ImageNet-style pretrained CNN + MiniLM with
            fresh projections, ``"scratch"`` a randomly initialised CNN.  Hub: ``True`` picks a
            default tag (``DEFAULT_HUB_TAGS``), a string is a tag or a local checkpoint path,
            ``False`` gives random weights.
        device: where to put the model; None picks the best available.

    Returns:
        ``(model, preprocess, tokenizer)``: ``model.encode_image(preprocess(images))`` and
        ``model.encode_text(tokenizer(texts))`` give normalised ``(N, E)`` embeddings.
    """
    device = get_device(device)
    if name in OFFLINE_CLIP_MODELS:
        from ecmm.models.image import ImagePreprocess

        if pretrained is True:
            from ecmm import assets

            model, _ = load_clip_checkpoint(assets.ensure_asset("clip"), device="cpu")
        elif pretrained in (False, "scratch"):
            model = _build_offline(ClipConfig(), pretrained_backbone=pretrained is False)
        else:
            raise ValueError(f"offline pretrained must be True, False or 'scratch'; got {pretrained!r}")
        config = model.backbone.config
        preprocess = ImagePreprocess(config.image_size, config.mean, config.std)
        tokenizer = ClipTokenizer(model.text_encoder.tokenizer, model.config.context_length)
        return model.to(device).eval(), preprocess, tokenizer
    import open_clip

    if name not in open_clip.list_models():
        raise ValueError(f"unknown CLIP model {name!r}: use 'ecmm-clip' or a name from open_clip.list_models()")
    tag = DEFAULT_HUB_TAGS.get(name) if pretrained is True else (pretrained or None)
    if pretrained is True and tag is None:
        raise ValueError(f"no default pretrained tag for {name!r}: pass pretrained='<tag or checkpoint path>'")
    model, _, transform = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
    return HubClipModel(model).eval(), HubPreprocess(transform), open_clip.get_tokenizer(name)


@torch.no_grad()
def embed_images(model: nn.Module, preprocess: Any, images: Any, batch_size: int = 256,
                 device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised image embeddings of uint8 images ``(N, H, W, 3)`` -> ``(N, E)`` on CPU."""
    device = get_device(device)
    model.to(device).eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if isinstance(batch, np.ndarray) and not batch.flags.writeable:
            batch = np.array(batch)  # memory-mapped photos are read-only; torch wants a writable copy
        chunks.append(model.encode_image(preprocess(batch).to(device)).cpu())
    return torch.cat(chunks)


def _to_device(tokens: Any, device: torch.device) -> Any:
    if isinstance(tokens, Mapping):
        return {key: value.to(device) for key, value in tokens.items()}
    return tokens.to(device)


_TEXT_FEATURES: dict[tuple, torch.Tensor] = {}  # MiniLM features of recently embedded text lists


@torch.no_grad()
def cached_text_features(model: ClipModel, texts: Sequence[str], device: str | torch.device | None = None) -> torch.Tensor:
    """MiniLM features of ``texts`` (before the projection), memoised per MiniLM weights and texts.

    Evaluations embed the same titles and names again and again while only the projections
    change; MiniLM is the expensive part, so its output is kept for the last few text lists.

    Returns:
        ``(N, 384)`` tensor on ``device``.
    """
    device = get_device(device)
    encoder = model.text_encoder
    fingerprint = float(sum(p.double().sum() for p in encoder.parameters()))
    key = (fingerprint, tuple(texts))
    if key not in _TEXT_FEATURES:
        if len(_TEXT_FEATURES) >= 16:
            _TEXT_FEATURES.pop(next(iter(_TEXT_FEATURES)))
        encoder.to(device).eval()
        tokenizer = ClipTokenizer(encoder.tokenizer, model.config.context_length)
        chunks = [model.text_features(_to_device(tokenizer(list(texts[start:start + 256])), device)).cpu()
                  for start in range(0, len(texts), 256)]
        _TEXT_FEATURES[key] = torch.cat(chunks)
    return _TEXT_FEATURES[key].to(device)


@torch.no_grad()
def embed_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 256,
                device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised text embeddings of ``N`` strings -> ``(N, E)`` on CPU.

    For the offline model the MiniLM features are memoised (:func:`cached_text_features`).
    """
    device = get_device(device)
    model.to(device).eval()
    texts = list(texts)
    if isinstance(model, ClipModel) and texts:
        return model.project_text(cached_text_features(model, texts, device)).cpu()
    chunks = [model.encode_text(_to_device(tokenizer(texts[start:start + batch_size]), device)).cpu()
              for start in range(0, len(texts), batch_size)]
    return torch.cat(chunks)
