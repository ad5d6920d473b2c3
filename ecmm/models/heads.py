"""Classifier heads ``g(z) = softmax(Wz + b)`` and the ``Classifier(f, g)`` composition.

The seed article writes ``p(y|z) = softmax(Σ_i w_i z_i)``; a sum of scalars is one number and
the softmax of one number is always 1. The correct head uses a weight *matrix* ``W`` of shape
(num_classes, num_features): one row of weights per class, one logit per class.
"""

from __future__ import annotations

import torch
from torch import nn


class SoftmaxHead(nn.Module):
    """Linear softmax classifier ``g(z) = softmax(Wz + b)``.

    ``forward`` returns the logits ``Wz + b`` (what ``cross_entropy`` expects, and numerically
    safer); :meth:`probabilities` applies the softmax.

    Args:
        num_features: size D of the feature vector ``z``.
        num_classes: number K of classes.
        temperature: logits are divided by this (1.0 = plain softmax).

    Shapes:
        z: (B, D) -> logits (B, K).
    """

    def __init__(self, num_features: int, num_classes: int, temperature: float = 1.0) -> None:
        super().__init__()
        if num_features <= 0 or num_classes <= 1:
            raise ValueError(
                f"Need num_features > 0 and num_classes > 1, got {num_features} and {num_classes}."
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.linear = nn.Linear(num_features, num_classes)
        self.temperature = float(temperature)

    @property
    def num_classes(self) -> int:
        return self.linear.out_features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits: (B, D) -> (B, K)."""
        return self.linear(z) / self.temperature

    def probabilities(self, z: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``softmax(Wz + b)``: (B, D) -> (B, K), rows sum to 1."""
        return self.forward(z).softmax(dim=-1)


class Classifier(nn.Module):
    """``p(y|x) = g(f(x))``: a backbone ``f`` followed by a head ``g``.

    Args:
        backbone: maps images (B, 3, S, S) to features (B, D).
        head: maps features (B, D) to logits (B, K).

    Shapes:
        x: (B, 3, S, S) -> logits (B, K).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: (B, 3, S, S) -> (B, K)."""
        return self.head(self.backbone(x))

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Count parameters (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
