"""EmbeddingIndex: exact cosine search (batched matmul + top-k), optional FAISS backend.

Saved as a cached artefact (:mod:`ecmm.artifacts`): a folder with ``vectors.safetensors`` (the
vectors and integer ids) and ``card.json`` (dimension, backend, size, and the file's size and
sha256), written atomically -- no pickles. Loading checks the card, so a damaged index is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ecmm.artifacts import CARD_NAME, REPAIR_COMMAND, ArtifactError, file_sha256, read_card, write_artifact

__all__ = ["EmbeddingIndex"]

BACKENDS = ("exact", "faiss")
INDEX_KIND = "ecmm.EmbeddingIndex"  # the card's "kind"
TENSORS_NAME = "vectors.safetensors"  # the file of vectors (N, D) and ids (N,)


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

    def save(self, folder: str | Path, card: Mapping[str, Any] | None = None) -> Path:
        """Write the index as a cached artefact: ``folder/vectors.safetensors`` + ``folder/card.json``.

        Written through :func:`ecmm.artifacts.write_artifact`: into a temporary folder first,
        swapped in only when complete, the card (with the file's size and sha256) last. An
        interrupted save leaves the previous index in place.

        Args:
            folder: the index folder (created; an older index there is replaced on success).
            card: extra card entries (recipe, data, ...) for whoever builds the index.

        Returns:
            ``folder``.
        """
        def write_files(temporary: Path) -> None:
            tensors = {"vectors": self._vectors.contiguous(), "ids": self._ids.contiguous()}
            save_file(tensors, str(temporary / TENSORS_NAME))

        described = {**(card or {}), "kind": INDEX_KIND, "dim": self.dim, "backend": self.backend,
                     "size": len(self)}
        return write_artifact(folder, write_files, described)

    @classmethod
    def load(cls, folder: str | Path, backend: str | None = None,
             command: str = REPAIR_COMMAND) -> "EmbeddingIndex":
        """Read an index written by :meth:`save`, after checking its card (sizes, sha256).

        Args:
            folder: the folder given to ``save``.
            backend: override the saved backend.
            command: the command that rebuilds this index, named in errors.

        Returns:
            The index.

        Raises:
            ecmm.artifacts.ArtifactError: missing, unfinished or damaged; the message names the
                folder and ``command``.
        """
        folder = Path(folder)
        if not (folder / CARD_NAME).exists() and folder.with_suffix(".json").is_file():
            return cls._load_single_files(folder, backend, command)
        card = read_card(folder, command=command)
        if card.get("kind") != INDEX_KIND or card.get("legacy"):
            raise ArtifactError(folder, f"card.json does not describe an {INDEX_KIND}", command)
        try:
            tensors = load_file(str(folder / TENSORS_NAME))
        except Exception as error:  # safetensors raises its own error types for a bad header
            raise ArtifactError(folder, f"{TENSORS_NAME} does not load ({error.__class__.__name__})", command) from None
        return cls._from_tensors(folder, card, tensors, backend, command)

    @classmethod
    def _from_tensors(cls, folder: Path, card: Mapping[str, Any], tensors: Mapping[str, torch.Tensor],
                      backend: str | None, command: str) -> "EmbeddingIndex":
        vectors, ids = tensors.get("vectors"), tensors.get("ids")
        if vectors is None or ids is None or vectors.ndim != 2 or vectors.shape[1] != card.get("dim") \
                or ids.shape != (vectors.shape[0],):
            raise ArtifactError(folder, "the stored vectors and ids do not match the card", command)
        index = cls(int(card["dim"]), backend=backend or card["backend"])
        index._vectors, index._ids = vectors, ids
        return index

    @classmethod
    def _load_single_files(cls, path: Path, backend: str | None, command: str) -> "EmbeddingIndex":
        """The earlier layout, ``path.safetensors`` + ``path.json`` (sha256 checked): still readable."""
        tensors_path, card_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text())
            if not tensors_path.is_file() or file_sha256(tensors_path) != card["sha256"]:
                raise ValueError("sha256")
            tensors = load_file(str(tensors_path))
        except Exception:  # unreadable card, missing or changed tensors: damaged either way
            raise ArtifactError(tensors_path, "the index does not match its card's sha256 (damaged)", command) from None
        return cls._from_tensors(path, card, tensors, backend, command)
