"""Contrastive losses for paired image/text embeddings (pure functions).

Both losses score every image against every text of a batch with a scaled cosine similarity
``logits = logit_scale * image_emb @ text_emb.T``.  Row ``i`` of the batch is a matching pair.

When the batch holds several rows with the same caption (several photos of one SKU share a
title), the plain ``arange`` labels of CLIP would call a true match a negative.  Pass
``caption_ids`` (one integer per row, equal for rows that share a caption) and every pair that
shares a caption id counts as a positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["clip_loss", "siglip_loss", "positive_mask"]


def positive_mask(caption_ids: torch.Tensor | None, batch_size: int, device: torch.device) -> torch.Tensor:
    """Boolean matrix of positive (image, text) pairs.

    Args:
        caption_ids: ``(B,)`` integer id per row, or ``None`` (every row its own caption).
        batch_size: ``B``.
        device: where to build the mask.

    Returns:
        ``(B, B)`` bool tensor, ``True`` where row ``i`` and column ``j`` share a caption.
    """
    if caption_ids is None:
        return torch.eye(batch_size, dtype=torch.bool, device=device)
    caption_ids = torch.as_tensor(caption_ids, device=device)
    if caption_ids.shape != (batch_size,):
        raise ValueError(
            f"caption_ids must have shape ({batch_size},), one id per row; got {tuple(caption_ids.shape)}"
        )
    return caption_ids[:, None] == caption_ids[None, :]


def _check_pairs(image_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(
            "image_emb and text_emb must both be (B, D) with the same shape; got "
            f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )


def clip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    *,
    caption_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE (the CLIP loss), correct for repeated captions.

    Each image classifies its caption among the batch's texts (a softmax over a row of the
    similarity matrix) and each text classifies its image (a softmax over a column); the loss is
    the mean of the two cross-entropies.  Formulation for repeated captions: *columns that carry
    the same caption are one class* -- the probability of the right answer is the softmax mass
    on all positives, ``loss_i = -log sum_{j: c_j = c_i} softmax(logits_i)_j``
    (``= logsumexp(all logits) - logsumexp(positive logits)``).  Perfectly separated pairs give
    a loss near 0 even with duplicates, and with distinct captions it is exactly CLIP's
    ``cross_entropy(logits, arange(B))``.

    Args:
        image_emb: ``(B, D)`` image embeddings, L2-normalised.
        text_emb: ``(B, D)`` text embeddings, L2-normalised; row ``i`` describes image ``i``.
        logit_scale: scalar multiplier (already exponentiated, e.g. ``model.logit_scale.exp()``).
        caption_ids: optional ``(B,)`` integer ids; rows with equal ids are all positives.

    Returns:
        Scalar tensor, the mean of the image->text and text->image cross-entropies.
    """
    _check_pairs(image_emb, text_emb)
    logits = logit_scale * image_emb @ text_emb.T  # (B, B)
    positives = positive_mask(caption_ids, logits.shape[0], logits.device)  # (B, B), symmetric
    negative_inf = torch.finfo(logits.dtype).min
    positive_logits = logits.masked_fill(~positives, negative_inf)  # (B, B)
    # rows: image -> text; columns: text -> image (the mask is symmetric)
    loss_image = (logits.logsumexp(dim=1) - positive_logits.logsumexp(dim=1)).mean()
    loss_text = (logits.logsumexp(dim=0) - positive_logits.logsumexp(dim=0)).mean()
    return (loss_image + loss_text) / 2


def siglip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | float,
    *,
    caption_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid pairwise loss (SigLIP).

    Every (image, text) cell of the batch is an independent binary problem: label ``+1`` when the
    pair shares a caption (the diagonal, or equal ``caption_ids``), ``-1`` otherwise;
    ``loss = -sum_ij log sigmoid(label_ij * (scale * s_ij + bias)) / B``.

    Args:
        image_emb: ``(B, D)`` image embeddings, L2-normalised.
        text_emb: ``(B, D)`` text embeddings, L2-normalised.
        logit_scale: scalar multiplier (already exponentiated).
        logit_bias: scalar bias (SigLIP initialises it near -10 so most pairs start negative).
        caption_ids: optional ``(B,)`` integer ids; rows with equal ids are positives.

    Returns:
        Scalar tensor, summed over the ``B x B`` pairs and divided by ``B``.
    """
    _check_pairs(image_emb, text_emb)
    logits = logit_scale * image_emb @ text_emb.T + logit_bias  # (B, B)
    positives = positive_mask(caption_ids, logits.shape[0], logits.device)
    labels = positives.to(logits.dtype) * 2 - 1  # (B, B) in {-1, +1}
    return -F.logsigmoid(labels * logits).sum() / logits.shape[0]
