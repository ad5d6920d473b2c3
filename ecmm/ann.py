"""Approximate nearest-neighbour search at catalog scale: exact search vs FAISS IVF / HNSW.

A shop with a million products cannot score every product for every query in a few
milliseconds on one CPU.  This module builds a synthetic, clustered set of L2-normalised
vectors (shaped like the 384-d MiniLM embeddings: products come in families), finds the true
top-k of some queries with exact search (:class:`ecmm.index.EmbeddingIndex`), and measures how much
of it an approximate index recovers (recall@k) and how fast, as a curve over the index's
speed/recall knob:

- IVF (``faiss.IndexIVFFlat``): k-means cells; a query visits ``nprobe`` cells.
- HNSW (``faiss.IndexHNSWFlat``): a navigable small-world graph; ``efSearch`` is the search beam.

FAISS is optional (``pip install faiss-cpu``); :func:`faiss_available` says whether it is there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

__all__ = ["AnnStudyConfig", "faiss_available", "clustered_vectors", "exact_neighbours", "recall_at_k",
           "build_ivf_index", "build_hnsw_index", "sweep_knob", "run_ann_study"]

KINDS = ("ivf", "hnsw")


@dataclass(frozen=True)
class AnnStudyConfig:
    """Sizes and knobs of the ANN study."""

    num_vectors: int = 1_000_000  # catalog size N
    dim: int = 384  # embedding dimension D (MiniLM's)
    num_clusters: int = 2_000  # product families in the synthetic data
    spread: float = 1.0  # within-family noise norm relative to the unit family centre
    num_queries: int = 200  # queries Q (drawn from the same distribution, not in the set)
    k: int = 10  # neighbours per query; recall@k is measured against exact top-k
    nlist: int = 1_024  # IVF cells
    train_size: int = 50_000  # vectors used to train the IVF k-means
    nprobes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)  # IVF knob values
    hnsw_neighbours: int = 32  # HNSW graph degree M
    hnsw_construction: int = 40  # HNSW efConstruction
    ef_searches: tuple[int, ...] = (16, 32, 64, 128, 256)  # HNSW knob values
    seed: int = 0  # seed of the data and queries

    def __post_init__(self) -> None:
        if self.num_vectors < self.k or self.num_queries < 1 or self.k < 1:
            raise ValueError("need num_vectors >= k >= 1 and num_queries >= 1")
        if self.nlist < 1 or self.nlist > self.num_vectors:
            raise ValueError(f"nlist must be in 1..num_vectors; got {self.nlist}")


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _require_faiss():
    if not faiss_available():
        raise ValueError("this needs FAISS: pip install faiss-cpu")
    import faiss

    return faiss


def clustered_vectors(num_vectors: int, dim: int, num_clusters: int, spread: float = 1.0, seed: int = 0,
                      chunk_size: int = 100_000, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic embeddings: family centres on the sphere plus Gaussian noise, L2-normalised.

    Family sizes follow a long tail (a few big families, many small ones), like a shop.

    Args:
        num_vectors: ``N``.
        dim: ``D``.
        num_clusters: number of families.
        spread: noise norm relative to the unit centre.
        seed: seed of the centres, the family choice and the noise.
        chunk_size: rows generated at a time (bounds the temporary memory).
        progress: show a tqdm bar.

    Returns:
        ``(vectors (N, D) float32 L2-normalised, family (N,) int64)``.
    """
    if num_vectors < 1 or dim < 1 or num_clusters < 1:
        raise ValueError("num_vectors, dim and num_clusters must be positive")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, num_clusters + 1) ** 0.7  # long tail of family sizes
    family = rng.choice(num_clusters, size=num_vectors, p=weights / weights.sum())
    vectors = np.empty((num_vectors, dim), dtype=np.float32)
    for start in tqdm(range(0, num_vectors, chunk_size), desc="synthetic vectors", disable=not progress):
        rows = slice(start, min(start + chunk_size, num_vectors))
        noise = rng.standard_normal((rows.stop - rows.start, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        block = centres[family[rows]] + noise
        vectors[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors, family.astype(np.int64)


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Exact top-``k`` by cosine with :class:`ecmm.index.EmbeddingIndex` (torch matmul + topk).

    Returns:
        ``(ids (Q, k) int64, seconds per query)``.
    """
    import torch

    from ecmm.index import EmbeddingIndex

    index = EmbeddingIndex(vectors.shape[1], backend="exact", batch_size=64)
    index._vectors = torch.from_numpy(vectors)  # already normalised: share the memory, no copy
    index._ids = torch.arange(len(vectors))
    start = time.perf_counter()
    _, ids = index.search(torch.from_numpy(queries), k)
    return ids.numpy(), (time.perf_counter() - start) / len(queries)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k ids that the approximate top-k found.

    Args:
        found: ``(Q, k)`` ids from the approximate index (``-1`` = nothing found).
        truth: ``(Q, k)`` ids from exact search.

    Returns:
        A number in ``[0, 1]``.
    """
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape != truth.shape:
        raise ValueError(f"found and truth must have the same (Q, k) shape; got {found.shape} and {truth.shape}")
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits) / truth.shape[1])


def build_ivf_index(vectors: np.ndarray, nlist: int, train_size: int = 50_000, seed: int = 0):
    """Train and fill an inner-product ``IndexIVFFlat``.

    Args:
        vectors: ``(N, D)`` float32, normalised.
        nlist: number of k-means cells.
        train_size: vectors sampled (seeded) to train the k-means.
        seed: seed of the sample and of the k-means.

    Returns:
        The FAISS index (set ``index.nprobe`` before searching).
    """
    faiss = _require_faiss()
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(len(vectors), size=min(train_size, len(vectors)), replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    index.add(vectors)  # faiss's Python wrapper keeps a reference to the quantizer
    return index


def build_hnsw_index(vectors: np.ndarray, neighbours: int = 32, construction: int = 40):
    """Build an inner-product ``IndexHNSWFlat`` (``efConstruction = construction``)."""
    faiss = _require_faiss()
    index = faiss.IndexHNSWFlat(vectors.shape[1], neighbours, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = construction
    index.add(vectors)
    return index


def sweep_knob(index, kind: str, values: Sequence[int], queries: np.ndarray, truth: np.ndarray,
               repeats: int = 3) -> pd.DataFrame:
    """Recall@k and latency of an index at each value of its knob.

    Args:
        index: a FAISS IVF or HNSW index.
        kind: ``"ivf"`` (knob ``nprobe``) or ``"hnsw"`` (knob ``efSearch``).
        values: knob values, small (fast) to large (accurate).
        queries: ``(Q, D)`` float32.
        truth: ``(Q, k)`` exact ids.
        repeats: timed passes over the queries (the median pass counts).

    Returns:
        DataFrame with ``index, knob, value, recall@k, ms_per_query``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    k = truth.shape[1]
    rows = []
    for value in values:
        if kind == "ivf":
            index.nprobe = int(value)
        else:
            index.hnsw.efSearch = int(value)
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            _, found = index.search(queries, k)
            passes.append(time.perf_counter() - start)
        rows.append({"index": kind, "knob": "nprobe" if kind == "ivf" else "efSearch", "value": int(value),
                     f"recall@{k}": recall_at_k(found, truth),
                     "ms_per_query": 1000.0 * float(np.median(passes)) / len(queries)})
    return pd.DataFrame(rows)


def run_ann_study(config: AnnStudyConfig = AnnStudyConfig(), kinds: Sequence[str] = ("ivf",),
                  progress: bool = True) -> dict:
    """The whole study: data, exact ground truth, each index's build time and knob curve.

    Args:
        config: sizes and knobs.
        kinds: which indexes to build (``"ivf"``, ``"hnsw"``).
        progress: show progress bars.

    Returns:
        ``{"curve": DataFrame (see :func:`sweep_knob`), "exact_ms_per_query": float,
        "build_seconds": {kind: float}, "num_vectors", "dim", "k"}``.
    """
    if any(kind not in KINDS for kind in kinds):
        raise ValueError(f"kinds must be among {KINDS}; got {list(kinds)}")
    _require_faiss()
    total = config.num_vectors + config.num_queries
    data, _ = clustered_vectors(total, config.dim, config.num_clusters, config.spread, config.seed,
                                progress=progress)
    vectors, queries = data[:config.num_vectors], np.ascontiguousarray(data[config.num_vectors:])
    truth, exact_seconds = exact_neighbours(vectors, queries, config.k)
    curves, build_seconds = [], {}
    for kind in tqdm(list(kinds), desc="ANN indexes", disable=not progress):
        start = time.perf_counter()
        if kind == "ivf":
            index = build_ivf_index(vectors, config.nlist, config.train_size, config.seed)
            values = [v for v in config.nprobes if v <= config.nlist]
        else:
            index = build_hnsw_index(vectors, config.hnsw_neighbours, config.hnsw_construction)
            values = list(config.ef_searches)
        build_seconds[kind] = time.perf_counter() - start
        curves.append(sweep_knob(index, kind, values, queries, truth))
        del index
    return {"curve": pd.concat(curves, ignore_index=True), "exact_ms_per_query": 1000.0 * exact_seconds,
            "build_seconds": build_seconds, "num_vectors": config.num_vectors, "dim": config.dim, "k": config.k}
