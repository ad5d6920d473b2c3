"""The kit's offline CLIP-style model: its small CNN and all-MiniLM-L6-v2, each with a linear projection.

It implements :class:`ecmm.models.protocol.ClipLike`. Its weights come from contrastive pretraining
on the source-domain icons (``ecmm prepare`` builds them); this module only builds and loads it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ecmm.artifacts import file_sha256, write_artifact
from ecmm.models.image import CNNConfig, EcmmCNN, ImagePreprocess, cnn_config_dict, create_image_backbone
from ecmm.models.protocol import build_param_groups, check_unlocked
from ecmm.models.text import load_text_encoder, offline_text_model_dir

__all__ = ["OFFLINE_CLIP_NAME", "ClipConfig", "ClipTokenizer", "ClipModel", "build_offline_clip", "load_offline_clip"]

OFFLINE_CLIP_NAME = "ecmm-clip"
TEXT_FEATURE_CACHE_SIZE = 64  # batches of MiniLM features kept while the text tower is locked


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
    """The offline dual encoder (a :class:`~ecmm.models.protocol.ClipLike`).

    Args:
        backbone: image feature extractor ``(B, 3, S, S) -> (B, backbone.num_features)`` with ``blocks``.
        text_encoder: MiniLM ``TextEncoder`` with ``forward(input_ids, attention_mask) -> (B, 384)``.
        config: :class:`ClipConfig`.
        preprocess: image preprocessing; None derives it from ``backbone.config`` (size, mean, std).
    """

    def __init__(self, backbone: nn.Module, text_encoder: nn.Module, config: ClipConfig = ClipConfig(),
                 preprocess: Any | None = None) -> None:
        super().__init__()
        self.config = config
        self.name = OFFLINE_CLIP_NAME
        self.strong_tower = "text"  # MiniLM: fine-tuning keeps it locked (text_locked)
        self.embed_dim = config.embed_dim
        self.backbone = backbone
        self.text_encoder = text_encoder
        text_dim = int(getattr(text_encoder, "embedding_dim", 384))
        self.image_projection = nn.Linear(backbone.num_features, config.embed_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        if preprocess is None:
            cnn = backbone.config
            preprocess = ImagePreprocess(cnn.image_size, cnn.mean, cnn.std)
        self.preprocess = preprocess
        self.tokenizer = ClipTokenizer(text_encoder.tokenizer, config.context_length)
        self.text_feature_cache: dict[tuple, torch.Tensor] = {}  # MiniLM outputs while it is locked
        self.lock_text_tower()  # MiniLM is frozen by default (LiT-style)

    # --- encoders -------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings. Shapes: ``(B, 3, S, S)`` preprocessed -> ``(B, embed_dim)``."""
        embeddings = self.image_projection(self.backbone(images))
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def text_features(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """MiniLM sentence features before the projection: ``(B, L)`` tokens -> ``(B, 384)``.

        While the text tower is locked MiniLM runs without gradients and its outputs are
        memoised per batch of tokens (keyed by the tokens and the weights' version counters), so
        evaluations that embed the same titles again only pay for the projection.
        """
        if self.text_tower_trainable and torch.is_grad_enabled():
            return self.text_encoder(tokens["input_ids"], tokens["attention_mask"])
        key = self._cache_key(tokens)
        if key not in self.text_feature_cache:
            if len(self.text_feature_cache) >= TEXT_FEATURE_CACHE_SIZE:
                self.text_feature_cache.pop(next(iter(self.text_feature_cache)))
            with torch.no_grad():
                self.text_feature_cache[key] = self.text_encoder(tokens["input_ids"], tokens["attention_mask"])
        return self.text_feature_cache[key]

    def _cache_key(self, tokens: Mapping[str, torch.Tensor]) -> tuple:
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        digest = hashlib.sha1(ids.cpu().numpy().tobytes() + mask.cpu().numpy().tobytes()).hexdigest()
        versions = tuple(p._version for p in self.text_encoder.parameters())
        return (digest, tuple(ids.shape), str(ids.device), self.text_encoder.training, versions)

    def project_text(self, features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Project :meth:`text_features` into the shared space: ``(B, 384) -> (B, E)``."""
        embeddings = self.text_projection(features)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def encode_text(self, tokens: Mapping[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Text embeddings from the tokenizer's output: ``(B, L)`` -> ``(B, embed_dim)``."""
        return self.project_text(self.text_features(tokens), normalize)

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to ``config.max_logit_scale`` (a scalar tensor)."""
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def forward(self, images: torch.Tensor,
                tokens: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image_emb (B, E), text_emb (B, E), scale ())`` for :func:`ecmm.losses.clip_loss`."""
        return self.encode_image(images), self.encode_text(tokens), self.scale()

    def image_blocks(self) -> list[nn.Module]:
        """The CNN's stages, stem first (their outputs are ``(B, C, h, w)`` maps)."""
        return list(self.backbone.blocks)

    # --- locking ---------------------------------------------------------------------------
    @property
    def text_tower_trainable(self) -> bool:
        """Whether any MiniLM parameter is trainable."""
        return any(p.requires_grad for p in self.text_encoder.parameters())

    def _text_groups(self) -> list[nn.Module]:
        transformer = self.text_encoder.transformer
        return [transformer.embeddings, *transformer.encoder.layer, self.text_projection]

    def lock_image_tower(self, unlocked_groups: int = 0, *, lock_projection: bool = False) -> "ClipModel":
        """Freeze the image tower except its last ``unlocked_groups`` groups (open_clip's counting).

        Groups, first to last: the CNN's stem, each residual block, the projection. So ``0`` freezes
        the CNN (and its batch-norm statistics), ``1`` trains the projection only, ``2`` the last
        block too. The projection stays trainable unless ``lock_projection`` (then it is frozen
        whatever the count, and ``1`` is refused).
        """
        check_unlocked(unlocked_groups, len(self.backbone.blocks) + 1, "unlocked_groups", lock_projection)
        self.backbone.set_trainable(last_blocks=max(unlocked_groups - 1, 0))
        self.image_projection.requires_grad_(not lock_projection)
        return self.train(self.training)

    def unlock_image_tower(self) -> "ClipModel":
        """Make the CNN and its projection trainable."""
        self.backbone.requires_grad_(True)
        self.image_projection.requires_grad_(True)
        return self.train(self.training)

    def lock_text_tower(self, unlocked_layers: int = 0, *, lock_projection: bool = False) -> "ClipModel":
        """Freeze MiniLM except its last ``unlocked_layers`` groups (open_clip's counting).

        Groups, first to last: the embeddings, each of the 6 transformer layers, the projection.
        So ``0`` freezes MiniLM, ``1`` trains the projection only, ``2`` the last layer too. The
        projection stays trainable unless ``lock_projection`` (then it is frozen whatever the
        count, and ``1`` is refused).
        """
        groups = self._text_groups()
        check_unlocked(unlocked_layers, len(groups), "unlocked_layers", lock_projection)
        self.text_encoder.requires_grad_(False)
        for group in groups[len(groups) - unlocked_layers:]:
            group.requires_grad_(True)
        self.text_projection.requires_grad_(not lock_projection)
        return self.train(self.training)

    def unlock_text_tower(self) -> "ClipModel":
        """Make MiniLM and its projection trainable."""
        self.text_encoder.requires_grad_(True)
        self.text_projection.requires_grad_(True)
        return self.train(self.training)

    def param_groups(self, head_lr: float, image_lr: float, text_lr: float,
                     weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups of trainable parameters: ``"head"`` (projections, ``logit_scale``),
        ``"image"`` (the CNN), ``"text"`` (MiniLM); see :func:`ecmm.models.protocol.build_param_groups`."""
        def part_of(name: str) -> str:
            return "image" if name.startswith("backbone.") else "text" if name.startswith("text_encoder.") else "head"

        return build_param_groups(self.named_parameters(), part_of,
                                  {"head": head_lr, "image": image_lr, "text": text_lr}, weight_decay)

    def train(self, mode: bool = True) -> "ClipModel":
        """Train mode everywhere except frozen parts (they keep dropout / batch-norm off)."""
        super().train(mode)
        if mode and not self.text_tower_trainable:
            self.text_encoder.eval()
        if mode and hasattr(self.backbone, "train"):
            self.backbone.train(mode)  # the kit's backbone keeps frozen batch norms in eval mode
        return self

    # --- saving ----------------------------------------------------------------------------
    def text_encoder_changed(self) -> bool:
        """Whether MiniLM's weights differ from the bundled all-MiniLM-L6-v2 ones."""
        from safetensors import safe_open

        state = self.text_encoder.transformer.state_dict()
        with safe_open(str(offline_text_model_dir(verify=False) / "model.safetensors"), "pt") as bundled:
            if set(state) - set(bundled.keys()):
                return True  # not the bundled architecture (the file may hold extra buffers such as position_ids)
            return any(not torch.equal(bundled.get_tensor(key), value.detach().cpu()) for key, value in state.items())

    def save(self, directory: str | Path, card: Mapping[str, Any]) -> Path:
        """Write ``model.safetensors`` (MiniLM too only if it changed) and the card, atomically.

        Args:
            directory: the folder (replaced only when everything is written).
            card: recipe / data / metrics to record; ``kind``, ``model_name``, ``config``,
                ``backbone`` and ``text_trained`` are added.

        Returns:
            The folder; :func:`ecmm.models.clip.load_clip_model` reads it.
        """
        from safetensors.torch import save_file

        if not isinstance(self.backbone, EcmmCNN):
            raise ValueError("only the kit's CNN backbone can be saved with the offline model")
        text_trained = self.text_encoder_changed()
        state = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()
                 if text_trained or not key.startswith("text_encoder.")}
        full_card = {**card, "kind": OFFLINE_CLIP_NAME, "model_name": OFFLINE_CLIP_NAME, "config": asdict(self.config),
                     "backbone": cnn_config_dict(self.backbone.config), "text_trained": text_trained}
        return write_artifact(directory, lambda folder: save_file(state, str(folder / "model.safetensors")), full_card)


def build_offline_clip(config: ClipConfig = ClipConfig(), pretrained_backbone: bool = True,
                       backbone_config: CNNConfig | None = None) -> ClipModel:
    """A fresh offline model: the CNN, bundled MiniLM and new projections, on the CPU.

    Args:
        config: :class:`ClipConfig`.
        pretrained_backbone: load the CNN's pretrained weights (``ECMM_HOME/assets/backbone``,
            built by ``ecmm prepare``); False gives a randomly initialised CNN.
        backbone_config: the CNN's architecture when it is random (None: ``CNNConfig()``).
    """
    if pretrained_backbone:
        if backbone_config is not None:
            raise ValueError("backbone_config sets a random CNN's architecture: pass it with pretrained_backbone=False")
        backbone, _ = create_image_backbone(config.image_backbone, pretrained=True, device="cpu")
    else:
        backbone = EcmmCNN(backbone_config or CNNConfig())
    return ClipModel(backbone, load_text_encoder(device="cpu"), config)


def load_offline_clip(directory: str | Path, card: Mapping[str, Any]) -> ClipModel:
    """Load a folder written by :meth:`ClipModel.save` (or by the kit's older code), on the CPU.

    Args:
        directory: the folder; its files were already checked by :func:`ecmm.artifacts.read_card`.
        card: its card (a legacy card's own ``sha256`` is checked here).

    Returns:
        The model in eval mode.
    """
    from safetensors.torch import load_file

    weights = Path(directory) / "model.safetensors"
    if card.get("legacy") and card.get("sha256") and file_sha256(weights) != card["sha256"]:
        raise ValueError(f"{weights} does not match its card's sha256: run `ecmm prepare --repair` to rebuild it")
    architecture = dict(card.get("backbone") or asdict(CNNConfig()))
    for key in ("widths", "mean", "std"):
        architecture[key] = tuple(architecture[key])
    model = build_offline_clip(ClipConfig(**card["config"]), pretrained_backbone=False,
                               backbone_config=CNNConfig(**architecture))
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if unexpected or any(not key.startswith("text_encoder.") for key in missing):
        raise ValueError(f"{weights} does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()
