"""EmbeddingIndex: exact cosine search (batched matmul + top-k), optional FAISS backend.

Saved as ``<path>.safetensors`` (the vectors and integer ids) plus ``<path>.json`` (a card with the
dimension, backend, size and sha256) -- no pickles.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

__all__ = ["EmbeddingIndex"]

BACKENDS = ("exact", "faiss")


class EmbeddingIndex:
    """A cosine-similarity index over L2-normalised vectors.

    Args:
        dim: embedding dimension ``D``.
        backend: ``"exact"`` (torch matmul + topk, default) or ``"faiss"`` (``IndexFlatIP``; worth it
            for catalogs of hundreds of thousands of items).
        batch_size: queries scored per matmul in the exact backend.
    """

    def __init__(self, dim: int, backend: str = "exact", batch_size: int = 1024) -> None:
        if dim < 1:
            raise ValueError(f"dim must be a positive integer; got {dim}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
        self.dim = dim
        self.backend = backend
        self.batch_size = batch_size
        self._vectors = torch.empty(0, dim)  # (N, D), normalised, float32, CPU
        self._ids = torch.empty(0, dtype=torch.long)  # (N,)
        self._faiss = None

    def __len__(self) -> int:
        return self._vectors.shape[0]

    @property
    def ids(self) -> torch.Tensor:
        """``(N,)`` int64 ids in insertion order."""
        return self._ids

    @property
    def vectors(self) -> torch.Tensor:
        """``(N, D)`` stored (normalised) vectors."""
        return self._vectors

    def _as_matrix(self, name: str, array) -> torch.Tensor:
        matrix = torch.as_tensor(np.asarray(array) if not torch.is_tensor(array) else array)
        matrix = matrix.detach().to("cpu", torch.float32)
        if matrix.ndim == 1:
            matrix = matrix[None]
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"{name} must be (n, {self.dim}); got {tuple(matrix.shape)}")
        return F.normalize(matrix, dim=1)

    def add(self, embeddings, ids=None) -> None:
        """Add vectors (normalised on the way in).

        Args:
            embeddings: ``(n, D)`` tensor or array.
            ids: optional ``(n,)`` integer ids; default continues ``0, 1, 2, ...``.
        """
        vectors = self._as_matrix("embeddings", embeddings)
        if ids is None:
            start = int(self._ids.max()) + 1 if len(self) else 0
            ids = torch.arange(start, start + vectors.shape[0])
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)
        if ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"got {vectors.shape[0]} embeddings but {ids.shape[0]} ids; pass one id per row")
        self._vectors = torch.cat([self._vectors, vectors])
        self._ids = torch.cat([self._ids, ids])
        self._faiss = None  # rebuilt lazily

    def _faiss_index(self):
        if self._faiss is None:
            import faiss  # optional dependency, imported only for this backend

            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(self._vectors.numpy())
        return self._faiss

    def search(self, queries, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` most similar stored vectors for each query.

        Args:
            queries: ``(Q, D)`` (or ``(D,)``) tensor or array; normalised internally.
            k: results per query, ``1 <= k``; capped at the index size.

        Returns:
            ``(scores, ids)``, both ``(Q, min(k, N))``: cosine similarities (descending) and ids.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1; got {k}")
        if len(self) == 0:
            raise ValueError("the index is empty; call add(embeddings) first")
        queries = self._as_matrix("queries", queries)
        k = min(k, len(self))
        if self.backend == "faiss":
            scores, positions = self._faiss_index().search(queries.numpy(), k)
            scores, positions = torch.from_numpy(scores), torch.from_numpy(positions).long()
        else:
            chunks = [
                (chunk @ self._vectors.T).topk(k, dim=1)  # (q, N) -> (q, k)
                for chunk in queries.split(self.batch_size)
            ]
            scores = torch.cat([c.values for c in chunks])
            positions = torch.cat([c.indices for c in chunks])
        return scores, self._ids[positions]

    def save(self, path: str | Path) -> Path:
        """Write ``path.safetensors`` and ``path.json``; return the safetensors path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors_path = path.with_suffix(".safetensors")
        save_file({"vectors": self._vectors.contiguous(), "ids": self._ids.contiguous()}, str(tensors_path))
        card = {
            "kind": "ecmm.EmbeddingIndex",
            "dim": self.dim,
            "backend": self.backend,
            "size": len(self),
            "sha256": hashlib.sha256(tensors_path.read_bytes()).hexdigest(),
        }
        path.with_suffix(".json").write_text(json.dumps(card, indent=2))
        return tensors_path

    @classmethod
    def load(cls, path: str | Path, backend: str | None = None) -> "EmbeddingIndex":
        """Read an index written by :meth:`save` (checks the sha256 of the tensors).

        Args:
            path: the path given to ``save`` (with or without a suffix).
            backend: override the saved backend.

        Returns:
            The index.
        """
        path = Path(path)
        tensors_path, card_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
        if not tensors_path.exists() or not card_path.exists():
            raise FileNotFoundError(f"no saved index at {path}; build one and call save() first")
        card = json.loads(card_path.read_text())
        if hashlib.sha256(tensors_path.read_bytes()).hexdigest() != card["sha256"]:
            raise ValueError(f"{tensors_path.name} does not match its card's sha256; rebuild the index")
        tensors = load_file(str(tensors_path))
        index = cls(card["dim"], backend=backend or card["backend"])
        index._vectors, index._ids = tensors["vectors"], tensors["ids"]
        return index
