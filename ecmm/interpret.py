"""Why did the model say that? Heat maps, word attributions and nearest training examples.

- :func:`grad_cam`: Grad-CAM (Selvaraju et al., 2017): the feature maps ``A`` of a target layer
  weighted by the spatial mean of ``∂score/∂A``, summed over channels, ReLU, upsampled to the
  input size. Generic over the module, the layer and the score; a ViT block's tokens
  ``(B, T, D)`` are read as a map too (patch tokens laid back on their grid).
- :func:`clip_grad_cam`: Grad-CAM of "this image matches this query" for any CLIP-like model,
  taken at one of ``model.image_blocks()``.
- :func:`occlusion_map`: the model-agnostic cross-check: grey out one patch at a time and record
  how much the score drops.
- :class:`QuerySimilarity`: the score "cosine similarity between this image and a search query",
  so that Grad-CAM explains a search hit.
- :func:`leave_one_out_attributions`: word-level attributions for any text classifier that has
  ``predict_proba(texts)``: the drop in the predicted class probability when a word is removed.
- :func:`nearest_examples`: the training examples closest to a prediction in embedding space.
- :func:`foreground_mask` and :func:`heat_inside_fraction`: measure whether a heat map sits on
  the product or on the background.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ecmm.device import get_device

__all__ = [
    "QuerySimilarity", "grad_cam", "clip_grad_cam", "tokens_to_map", "occlusion_map", "leave_one_out_attributions",
    "nearest_examples", "foreground_mask", "heat_inside_fraction",
]


class QuerySimilarity(nn.Module):
    """Score images by cosine similarity to fixed query embeddings.

    Args:
        image_encoder: a module or callable mapping images ``(B, 3, S, S)`` to embeddings ``(B, E)``
            (e.g. ``clip_model.encode_image``).
        query_embeddings: ``(E,)`` one query for all images, or ``(B, E)`` one query per image.

    Shapes:
        images: (B, 3, S, S) -> scores (B,).
    """

    def __init__(self, image_encoder: Callable[[torch.Tensor], torch.Tensor],
                 query_embeddings: torch.Tensor) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.register_buffer("queries", F.normalize(torch.as_tensor(query_embeddings).float(), dim=-1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Cosine similarities ``(B,)``."""
        embeddings = F.normalize(self.image_encoder(images), dim=-1)  # (B, E)
        queries = self.queries if self.queries.ndim == 2 else self.queries.expand_as(embeddings)
        return (embeddings * queries).sum(dim=-1)


def _scores(outputs: torch.Tensor, targets: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    """Reduce model outputs to one score per image: ``(B,)`` as is, ``(B, K)`` at ``targets``."""
    if outputs.ndim == 1:
        return outputs
    if outputs.ndim != 2:
        raise ValueError(f"the model must return (B,) scores or (B, K) logits; got {tuple(outputs.shape)}")
    if targets is None:
        targets = outputs.argmax(dim=1)
    targets = torch.as_tensor(targets, device=outputs.device).long().reshape(-1)
    if targets.numel() != outputs.shape[0]:
        raise ValueError(f"need one target per image: got {targets.numel()} for {outputs.shape[0]} images")
    return outputs.gather(1, targets[:, None]).squeeze(1)


def tokens_to_map(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Lay a ViT block's patch tokens back on their square grid.

    Leading tokens that do not fit the grid (the class token, register tokens) are dropped: with
    ``T`` tokens the grid side is ``h`` for the smallest ``p >= 0`` such that ``T - p = h²``.
    A sequence-first output ``(T, B, D)`` is recognised by ``batch_size``.

    Shapes:
        tokens: ``(B, T, D)`` or ``(T, B, D)`` -> ``(B, D, h, h)``.
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (B, T, D); got {tuple(tokens.shape)}")
    if tokens.shape[0] != batch_size and tokens.shape[1] == batch_size:
        tokens = tokens.transpose(0, 1)  # (T, B, D) -> (B, T, D)
    count = tokens.shape[1]
    for prefix in range(count):
        side = math.isqrt(count - prefix)
        if side * side == count - prefix:
            break
    grid = tokens[:, prefix:]  # (B, h*h, D)
    return grid.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)


def grad_cam(
    model: nn.Module,
    target_layer: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Grad-CAM heat maps of ``model``'s score for each image, taken at ``target_layer``.

    Args:
        model: maps preprocessed images to scores ``(B,)`` (e.g. :class:`QuerySimilarity`) or
            logits ``(B, K)``.
        target_layer: a submodule of ``model`` whose output is a feature map ``(B, C, h, w)``
            (for the kit's CNN: ``backbone.blocks[-1]``) or a ViT block's tokens ``(B, T, D)``
            (read with :func:`tokens_to_map`; with a class-token ViT take a block before the last:
            the last block's patch tokens do not reach the class token).
        images: ``(B, 3, S, S)`` preprocessed images.
        targets: for logits, the class to explain per image; None explains the top class.
        device: where to run; None picks the best available.

    Returns:
        ``(B, S, S)`` float tensor on CPU, non-negative, each map scaled to a maximum of 1
        (an all-zero map stays zero).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, 3, S, S) preprocessed tensors; got {tuple(images.shape)}")
    device = get_device(device)
    captured: dict[str, torch.Tensor] = {}

    def keep_output(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not torch.is_tensor(output) or output.ndim not in (3, 4):
            raise ValueError("target_layer must output a feature map (B, C, h, w) or tokens (B, T, D): "
                             "pick a conv block or a transformer block")
        output.retain_grad()
        captured["maps"] = output

    was_training = model.training
    model.to(device).eval()
    handle = target_layer.register_forward_hook(keep_output)
    try:
        with torch.enable_grad():
            inputs = images.to(device).float().requires_grad_(True)  # ensures a graph through frozen layers
            scores = _scores(model(inputs), targets)  # (B,)
            if "maps" not in captured:
                raise ValueError("target_layer was not used by the model's forward pass: pass one of its submodules")
            gradients = torch.autograd.grad(scores.sum(), captured["maps"])[0]  # (B, C, h, w) or (B, T, D)
    finally:
        handle.remove()
        model.train(was_training)
    maps = captured["maps"].detach()
    if maps.ndim == 3:
        maps, gradients = tokens_to_map(maps, images.shape[0]), tokens_to_map(gradients, images.shape[0])
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1): channel importance
    cam = F.relu((weights * maps).sum(dim=1, keepdim=True)).float()  # (B, 1, h, w)
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    return (cam / peak).clamp(0, 1).cpu()


def clip_grad_cam(model: nn.Module, images: torch.Tensor, query_embeddings: torch.Tensor, block: int = -2,
                  device: str | torch.device | None = None) -> torch.Tensor:
    """Where does a CLIP-like model see the query? Grad-CAM of the image-query cosine similarity.

    Args:
        model: any :class:`~ecmm.models.clip.ClipLike` (offline CNN or open_clip ViT / ResNet).
        images: ``(B, 3, S, S)`` images preprocessed with ``model.preprocess``.
        query_embeddings: ``(E,)`` one query for all images or ``(B, E)`` one per image.
        block: which of ``model.image_blocks()`` to read (default the one before the last, which
            a class-token ViT needs; for the kit's CNN it is a 4 x 4 map at 32 px).
        device: where to run; None picks the best available.

    Returns:
        ``(B, S, S)`` maps in [0, 1] on CPU.
    """
    blocks = model.image_blocks()
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f"block must index one of the model's {len(blocks)} image blocks; got {block}")
    device = get_device(device)
    scorer = QuerySimilarity(model.encode_image, torch.as_tensor(query_embeddings).to(device))
    scorer.add_module("model", model)  # so that grad_cam moves the model and sets its mode
    scorer.train(model.training)  # grad_cam restores this mode afterwards
    return grad_cam(scorer, blocks[block], images, device=device)


@torch.no_grad()
def occlusion_map(
    score_function: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    patch_size: int = 8,
    stride: int | None = None,
    fill_value: float = 0.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Occlusion sensitivity: the score drop when a square patch is replaced by ``fill_value``.

    Args:
        score_function: maps images ``(N, 3, S, S)`` to scores ``(N,)``.
        images: ``(B, 3, S, S)`` preprocessed images (0 is the dataset mean after normalisation).
        patch_size: side of the occluding square in pixels.
        stride: step between patches; None uses ``patch_size`` (no overlap).
        fill_value: value written into the patch.
        batch_size: occluded images scored per call.

    Returns:
        ``(B, S, S)`` float tensor: mean score drop of the patches covering each pixel
        (positive = the region supports the score).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, 3, S, S); got {tuple(images.shape)}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1; got {patch_size}")
    stride = stride or patch_size
    size_h, size_w = images.shape[-2:]
    corners = [(top, left) for top in range(0, max(size_h - patch_size, 0) + 1, stride)
               for left in range(0, max(size_w - patch_size, 0) + 1, stride)]
    base = score_function(images).float().cpu()  # (B,)
    drop = torch.zeros(images.shape[0], size_h, size_w)
    cover = torch.zeros(size_h, size_w)
    for top, left in corners:
        cover[top:top + patch_size, left:left + patch_size] += 1
    for index in range(images.shape[0]):
        occluded = images[index:index + 1].repeat(len(corners), 1, 1, 1)  # (P, 3, S, S)
        for position, (top, left) in enumerate(corners):
            occluded[position, :, top:top + patch_size, left:left + patch_size] = fill_value
        scores = torch.cat([score_function(occluded[start:start + batch_size]).float().cpu()
                            for start in range(0, len(corners), batch_size)])
        for score, (top, left) in zip(scores, corners):
            drop[index, top:top + patch_size, left:left + patch_size] += base[index] - score
    return drop / cover.clamp(min=1)


def leave_one_out_attributions(
    predict_proba: Callable[[Sequence[str]], np.ndarray],
    text: str,
    target: int | None = None,
) -> pd.DataFrame:
    """Word-level attributions by leave-one-out.

    The attribution of word ``i`` is ``p(target | text) - p(target | text without word i)``:
    positive words pushed the prediction towards ``target``.

    Args:
        predict_proba: maps a list of texts to ``(N, K)`` class probabilities.
        text: the message to explain (words are split on whitespace).
        target: class index to explain; None explains the predicted class.

    Returns:
        DataFrame with columns ``position, word, attribution`` in word order, and
        ``attrs["target"]`` / ``attrs["probability"]`` for the explained class.
    """
    words = str(text).split()
    if not words:
        raise ValueError("the text is empty: pass a message with at least one word")
    variants = [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]
    probabilities = np.asarray(predict_proba([" ".join(words), *variants]), dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(words) + 1:
        raise ValueError("predict_proba must return one row of class probabilities per text")
    full = probabilities[0]
    target = int(np.argmax(full)) if target is None else int(target)
    if not 0 <= target < full.shape[0]:
        raise ValueError(f"target must be a class index in 0..{full.shape[0] - 1}; got {target}")
    frame = pd.DataFrame({
        "position": np.arange(len(words)),
        "word": words,
        "attribution": full[target] - probabilities[1:, target],
    })
    frame.attrs.update(target=target, probability=float(full[target]))
    return frame


def nearest_examples(
    query_embeddings: torch.Tensor | np.ndarray,
    reference_embeddings: torch.Tensor | np.ndarray,
    k: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` reference (training) examples most similar to each query, by cosine similarity.

    Args:
        query_embeddings: ``(Q, D)`` (or ``(D,)``) embeddings of the predictions to explain.
        reference_embeddings: ``(N, D)`` embeddings of the training examples.
        k: neighbours per query (at most N).

    Returns:
        ``(similarities (Q, k), indices (Q, k))`` as numpy arrays, most similar first.
    """
    queries = torch.as_tensor(np.asarray(query_embeddings), dtype=torch.float32)
    references = torch.as_tensor(np.asarray(reference_embeddings), dtype=torch.float32)
    queries = queries[None] if queries.ndim == 1 else queries
    if references.ndim != 2 or queries.shape[1] != references.shape[1]:
        raise ValueError(f"embeddings must share their dimension: queries {tuple(queries.shape)}, "
                         f"references {tuple(references.shape)}")
    if not 1 <= k <= references.shape[0]:
        raise ValueError(f"k must be between 1 and the number of references ({references.shape[0]}); got {k}")
    similarities = F.normalize(queries, dim=1) @ F.normalize(references, dim=1).T  # (Q, N)
    values, indices = similarities.topk(k, dim=1)
    return values.numpy(), indices.numpy()


def foreground_mask(photos: np.ndarray, threshold: float = 40.0) -> np.ndarray:
    """Pixels that differ from the photo's background colour (taken from the four corners).

    Args:
        photos: uint8 ``(N, H, W, 3)`` shop photos (a product on a plain tinted background).
        threshold: Euclidean RGB distance above which a pixel counts as product.

    Returns:
        Boolean ``(N, H, W)`` masks.
    """
    photos = np.asarray(photos)
    if photos.ndim != 4 or photos.shape[-1] != 3:
        raise ValueError(f"photos must be (N, H, W, 3) uint8 arrays; got {photos.shape}")
    pixels = photos.astype(np.float32)
    corners = np.stack([pixels[:, 0, 0], pixels[:, 0, -1], pixels[:, -1, 0], pixels[:, -1, -1]], axis=1)
    background = np.median(corners, axis=1)[:, None, None, :]  # (N, 1, 1, 3)
    return np.linalg.norm(pixels - background, axis=-1) > threshold


def heat_inside_fraction(heat_maps: torch.Tensor | np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each heat map's total mass that lies inside its mask.

    Args:
        heat_maps: ``(N, H, W)`` non-negative maps (resized to the mask size if needed).
        masks: boolean ``(N, H', W')`` foreground masks.

    Returns:
        ``(N,)`` fractions in [0, 1]; compare with ``masks.mean((1, 2))``, the fraction a
        uniform map would give.
    """
    heat = torch.as_tensor(np.asarray(heat_maps), dtype=torch.float32)
    masks = np.asarray(masks, dtype=bool)
    if heat.ndim != 3 or masks.ndim != 3 or heat.shape[0] != masks.shape[0]:
        raise ValueError(f"need (N, H, W) heat maps and masks; got {tuple(heat.shape)} and {masks.shape}")
    if heat.shape[1:] != masks.shape[1:]:
        heat = F.interpolate(heat[:, None], size=masks.shape[1:], mode="bilinear", align_corners=False)[:, 0]
    heat = heat.clamp(min=0).numpy()
    total = heat.sum(axis=(1, 2))
    inside = (heat * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.maximum(total, 1e-12), 0.0)
