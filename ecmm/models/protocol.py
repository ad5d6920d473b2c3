"""The protocol every CLIP-like model of the kit speaks, and the small helpers its implementations share.

A :class:`ClipLike` model is a ``torch.nn.Module`` with open_clip's verbs:

- ``encode_image(images (B, 3, S, S), normalize=True) -> (B, E)`` and
  ``encode_text(tokens, normalize=True) -> (B, E)``;
- the preprocessing it needs travels with it (as in timm / open_clip): ``model.preprocess(images)``
  and ``model.tokenizer(texts)`` give what the encoders take;
- ``lock_image_tower(unlocked_groups=0)`` / ``lock_text_tower(unlocked_layers=0)`` freeze a tower
  except its last groups (open_clip's counting: the projection is the last group, the last block
  the one before it, the embeddings the first). The projection stays trainable unless
  ``lock_projection=True``, which freezes it whatever the count; ``unlock_*`` make a tower
  trainable again;
- ``param_groups(...)`` gives optimizer groups with one learning rate per part;
- ``save(directory, card)`` writes a folder that :func:`ecmm.models.clip.load_clip_model` reads.

Two classes implement it: the offline :class:`~ecmm.models.offline_clip.ClipModel` and the
open_clip adapter :class:`~ecmm.models.openclip.OpenClipModel`. Code that uses a model should
only call what is listed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

__all__ = ["ClipLike", "move_tokens", "build_param_groups", "check_unlocked", "PARAMETER_PARTS"]

PARAMETER_PARTS: tuple[str, ...] = ("head", "image", "text")  # names of the groups param_groups returns


@runtime_checkable
class ClipLike(Protocol):
    """A dual encoder with open_clip's verbs; see the module docstring.

    Attributes:
        name: ``"ecmm-clip"`` or the open_clip architecture name.
        embed_dim: size ``E`` of the shared embedding space.
        strong_tower: ``"text"`` or ``"image"``: the tower fine-tuning keeps locked by default
            (the offline model's MiniLM; open_clip's image tower, as LiT does).
        logit_scale: learnable log of the inverse temperature (a parameter).
        preprocess: images (uint8 ``(N, H, W, 3)`` array, PIL image or list of them) -> ``(N, 3, S, S)`` float.
        tokenizer: ``list[str]`` -> tokens that ``encode_text`` accepts (a dict of ``(N, L)``
            tensors or one ``(N, L)`` tensor; move them with :func:`move_tokens`).
    """

    name: str
    embed_dim: int
    strong_tower: str
    logit_scale: nn.Parameter
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], Any]

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(B, 3, S, S)`` preprocessed images -> ``(B, E)`` embeddings (L2-normalised by default)."""

    def encode_text(self, tokens: Any, normalize: bool = True) -> torch.Tensor:
        """Tokenizer output for ``B`` texts -> ``(B, E)`` embeddings (L2-normalised by default)."""

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` clamped to the model's maximum (a scalar tensor)."""

    def image_blocks(self) -> list[nn.Module]:
        """The image trunk's blocks, first to last (Grad-CAM reads their outputs)."""

    def lock_image_tower(self, unlocked_groups: int = 0, *, lock_projection: bool = False) -> "ClipLike":
        """Freeze the image tower except its last ``unlocked_groups`` groups; returns self."""

    def lock_text_tower(self, unlocked_layers: int = 0, *, lock_projection: bool = False) -> "ClipLike":
        """Freeze the text tower except its last ``unlocked_layers`` groups; returns self."""

    def unlock_image_tower(self) -> "ClipLike":
        """Make the whole image tower (projection included) trainable; returns self."""

    def unlock_text_tower(self) -> "ClipLike":
        """Make the whole text tower (projection included) trainable; returns self."""

    def param_groups(self, head_lr: float, image_lr: float, text_lr: float,
                     weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups ``"head"``, ``"image"``, ``"text"`` of the trainable parameters."""

    def save(self, directory: str | Path, card: Mapping[str, Any]) -> Path:
        """Write ``model.safetensors`` and a card; returns the folder."""


def move_tokens(tokens: Any, device: str | torch.device) -> Any:
    """Move tokenizer output to ``device``: a dict of tensors or one tensor.

    Shapes:
        unchanged (``(N, L)`` per tensor).
    """
    if isinstance(tokens, Mapping):
        return {key: value.to(device) for key, value in tokens.items()}
    return tokens.to(device)


def check_unlocked(count: int, available: int | None, what: str, lock_projection: bool) -> None:
    """Raise ValueError unless ``0 <= count <= available`` and the request is consistent.

    Args:
        count: the requested ``unlocked_groups`` / ``unlocked_layers``.
        available: how many groups the tower has (None: unknown, only ``count >= 0`` is checked).
        what: the argument's name, for the message.
        lock_projection: the projection (the last group) is frozen whatever ``count`` says, so
            ``count == 1`` would ask for nothing to train.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{what} must be a non-negative integer; got {count!r}")
    if available == 0 and count > 0:
        raise ValueError(f"{what}={count}: this tower can only be locked as a whole ({what}=0)")
    if available is not None and count > available:
        raise ValueError(f"{what}={count} but this tower has only {available} groups "
                         f"(embeddings, each block, projection)")
    if lock_projection and count == 1:
        raise ValueError(f"lock_projection=True with {what}=1: the projection is the last group, the only one "
                         f"asked to train; use {what}=0 (nothing trains) or 2 (the last block, projection locked)")


def build_param_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], part_of: Callable[[str], str],
                       learning_rates: Mapping[str, float], weight_decay: float = 0.0) -> list[dict]:
    """Split trainable parameters into named optimizer groups.

    Args:
        named_parameters: ``model.named_parameters()``.
        part_of: maps a parameter name to one of :data:`PARAMETER_PARTS`.
        learning_rates: ``{part: lr}`` for every part.
        weight_decay: weight decay of every group.

    Returns:
        ``[{"name", "params", "lr", "weight_decay"}, ...]`` in the order of :data:`PARAMETER_PARTS`,
        only for parts that have trainable parameters (frozen ones are left out).
    """
    for part, rate in learning_rates.items():
        if not rate >= 0:
            raise ValueError(f"the {part} learning rate must be >= 0; got {rate}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
    grouped: dict[str, list[nn.Parameter]] = {part: [] for part in PARAMETER_PARTS}
    for name, parameter in named_parameters:
        if parameter.requires_grad:
            grouped[part_of(name)].append(parameter)
    return [{"name": part, "params": grouped[part], "lr": float(learning_rates[part]),
             "weight_decay": float(weight_decay)} for part in PARAMETER_PARTS if grouped[part]]
