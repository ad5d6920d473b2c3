"""ANN study helpers at toy sizes."""

import numpy as np
import pytest

from ecmm import ann

pytestmark = pytest.mark.skipif(not ann.faiss_available(), reason="faiss-cpu is not installed")


def test_clustered_vectors_are_normalised_and_deterministic():
    first, family = ann.clustered_vectors(500, 16, 10, seed=3, chunk_size=128)
    second, _ = ann.clustered_vectors(500, 16, 10, seed=3)
    assert first.shape == (500, 16) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, second)
    assert family.shape == (500,) and family.max() < 10
    counts = np.bincount(family, minlength=10)
    assert counts[0] > counts[-1]  # long tail: the first family is the biggest


def test_recall_at_k_hand_computed():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [-1, -1, -1]])
    assert ann.recall_at_k(found, truth) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="shape"):
        ann.recall_at_k(found[:, :2], truth)


def test_exact_neighbours_match_numpy():
    vectors, _ = ann.clustered_vectors(300, 8, 5, seed=0)
    queries = vectors[:4] + 0.01
    ids, seconds = ann.exact_neighbours(vectors, queries.astype(np.float32), 5)
    expected = np.argsort(-(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ vectors.T, axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    assert seconds >= 0


def test_ivf_curve_reaches_exact_when_probing_every_cell():
    config = ann.AnnStudyConfig(num_vectors=2_000, dim=16, num_clusters=20, num_queries=30, nlist=16,
                                train_size=1_000, nprobes=(1, 4, 16))
    result = ann.run_ann_study(config, kinds=("ivf",), progress=False)
    curve = result["curve"]
    assert list(curve["value"]) == [1, 4, 16]
    recall = curve["recall@10"].to_numpy()
    assert recall[-1] == pytest.approx(1.0)  # all cells visited = exhaustive search
    assert recall[0] < 1.0 and np.all(np.diff(recall) >= 0)
    assert result["build_seconds"]["ivf"] > 0 and result["exact_ms_per_query"] > 0


def test_hnsw_curve_improves_with_ef_search():
    vectors, _ = ann.clustered_vectors(1_500, 16, 15, seed=1)
    queries, _ = ann.clustered_vectors(20, 16, 15, seed=1)
    truth, _ = ann.exact_neighbours(vectors, queries, 10)
    index = ann.build_hnsw_index(vectors, neighbours=8, construction=20)
    curve = ann.sweep_knob(index, "hnsw", [1, 200], queries, truth, repeats=1)
    assert curve["knob"].tolist() == ["efSearch", "efSearch"]
    assert curve["recall@10"].iloc[1] >= 0.9
    assert curve["recall@10"].iloc[1] >= curve["recall@10"].iloc[0]


def test_bad_config_and_kind():
    with pytest.raises(ValueError, match="nlist"):
        ann.AnnStudyConfig(num_vectors=100, nlist=500)
    with pytest.raises(ValueError, match="kinds"):
        ann.run_ann_study(ann.AnnStudyConfig(num_vectors=100, nlist=4), kinds=("lsh",))
