"""Neighbour search of the three relations against brute-force distance matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from sptgnn.graph.relations import RelationIndex


def knn_edges(reference, targets, k, exclude_self):
    """The spatial relation's edges of a planar :class:`RelationIndex` (the production search)."""
    index = RelationIndex(["spatial"], {"spatial": k}, candidates=k, geographic=False).fit(reference)
    return index.edges(targets, exclude_self=exclude_self)["spatial"]


def elevation_edges(coords_ref, elev_ref, coords_tgt, elev_tgt, k, candidates, exclude_self):
    """The elevation relation's edges of a :class:`RelationIndex` (the production search)."""
    index = RelationIndex(["elevation"], {"elevation": k}, candidates, geographic=False).fit(coords_ref,
                                                                                          elevation=elev_ref)
    return index.edges(coords_tgt, elevation=elev_tgt, exclude_self=exclude_self)["elevation"]


def _by_target(src, dst, dist, num_targets):
    out = {}
    for t in range(num_targets):
        sel = dst == t
        out[t] = dict(zip(src[sel].tolist(), dist[sel].tolist()))
    return out


def _brute_knn(reference, targets, k, exclude_self):
    d = cdist(targets, reference)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_knn_edges_equal_brute_force_for_new_targets(dim):
    rng = np.random.default_rng(dim)
    ref, tgt = rng.normal(size=(30, dim)), rng.normal(size=(11, dim))
    src, dst, dist = knn_edges(ref, tgt, 5, exclude_self=False)
    assert len(src) == len(dst) == len(dist) == 11 * 5
    idx, d = _brute_knn(ref, tgt, 5, exclude_self=False)
    got = _by_target(src, dst, dist, 11)
    for t in range(11):
        assert set(got[t]) == set(idx[t].tolist())
        for j, dj in zip(idx[t], d[t]):
            assert got[t][j] == pytest.approx(dj, rel=1e-12)


def test_knn_edges_exclude_self_equal_brute_force():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 1000, size=(25, 2))
    src, dst, dist = knn_edges(ref, ref, 4, exclude_self=True)
    assert not np.any(src == dst)
    np.testing.assert_array_equal(np.bincount(dst, minlength=25), 4)
    idx, d = _brute_knn(ref, ref, 4, exclude_self=True)
    got = _by_target(src, dst, dist, 25)
    for t in range(25):
        assert set(got[t]) == set(idx[t].tolist())
        np.testing.assert_allclose(sorted(got[t].values()), d[t], rtol=1e-12)


def test_duplicate_points_never_make_a_self_loop():
    ref = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 0.0], [9.0, 0.0]])
    src, dst, dist = knn_edges(ref, ref, 2, exclude_self=True)
    assert not np.any(src == dst)
    got = _by_target(src, dst, dist, 5)
    assert set(got[0]) == {1, 2}
    assert set(got[1]) == {0, 2}
    assert set(got[2]) == {0, 1}
    assert got[0][1] == 0.0


def test_k_is_capped_at_available_nodes():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    src, dst, _ = knn_edges(ref, ref, 10, exclude_self=True)
    np.testing.assert_array_equal(np.bincount(dst), [2, 2, 2])
    src, dst, _ = knn_edges(ref, np.array([[0.5, 0.0]]), 10, exclude_self=False)
    assert sorted(src.tolist()) == [0, 1, 2]


def test_no_targets_gives_no_edges():
    src, dst, dist = knn_edges(np.zeros((3, 2)), np.zeros((0, 2)), 2, exclude_self=False)
    assert src.size == dst.size == dist.size == 0


def test_too_few_reference_nodes():
    with pytest.raises(ValueError, match="at least 2"):
        knn_edges(np.zeros((1, 2)), np.zeros((1, 2)), 2, exclude_self=True)
    with pytest.raises(ValueError, match="at least 1"):
        knn_edges(np.zeros((0, 2)), np.zeros((1, 2)), 2, exclude_self=False)


def _brute_elevation(coords_ref, elev_ref, coords_tgt, elev_tgt, k, candidates, exclude_self):
    idx, _ = _brute_knn(coords_ref, coords_tgt, candidates, exclude_self)
    out = {}
    for t in range(len(coords_tgt)):
        diff = np.abs(elev_ref[idx[t]] - elev_tgt[t])
        keep = np.argsort(diff)[:k]
        out[t] = dict(zip(idx[t][keep].tolist(), diff[keep].tolist()))
    return out


@pytest.mark.parametrize("exclude_self", [True, False])
def test_elevation_edges_pick_the_closest_in_elevation_among_spatial_candidates(exclude_self):
    rng = np.random.default_rng(7)
    coords_ref, elev_ref = rng.uniform(0, 1000, (40, 2)), rng.uniform(0, 300, 40)
    if exclude_self:
        coords_tgt, elev_tgt = coords_ref, elev_ref
    else:
        coords_tgt, elev_tgt = rng.uniform(0, 1000, (9, 2)), rng.uniform(0, 300, 9)
    src, dst, diff = elevation_edges(coords_ref, elev_ref, coords_tgt, elev_tgt, 3, 8, exclude_self)
    n_t = len(coords_tgt)
    np.testing.assert_array_equal(np.bincount(dst, minlength=n_t), 3)
    if exclude_self:
        assert not np.any(src == dst)
    expected = _brute_elevation(coords_ref, elev_ref, coords_tgt, elev_tgt, 3, 8, exclude_self)
    got = _by_target(src, dst, diff, n_t)
    for t in range(n_t):
        assert got[t].keys() == expected[t].keys()
        for j in got[t]:
            assert got[t][j] == pytest.approx(expected[t][j], abs=1e-12)
            assert got[t][j] == pytest.approx(abs(elev_ref[j] - elev_tgt[t]), abs=1e-12)


def test_elevation_edges_ignore_a_node_outside_the_candidates():
    # node 3 has exactly the target's elevation but is spatially far: it is not among the 2 candidates
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [500.0, 0.0]])
    elev = np.array([10.0, 30.0, 15.0, 10.0])
    src, dst, diff = elevation_edges(coords, elev, coords[:1], elev[:1], 1, 2, exclude_self=False)
    # candidates of target (0, 0): nodes 0 and 1; node 0 has |Δ| = 0
    assert src.tolist() == [0]
    assert diff.tolist() == [0.0]
    src, dst, diff = elevation_edges(coords, elev, coords[:1] + 0.1, np.array([14.0]), 1, 3, exclude_self=False)
    assert src.tolist() == [2]
    assert diff.tolist() == [1.0]


def test_elevation_edges_no_targets():
    src, dst, diff = elevation_edges(np.zeros((3, 2)), np.zeros(3), np.zeros((0, 2)), np.zeros(0), 2, 3, False)
    assert src.size == dst.size == diff.size == 0


def test_leaf_order_queries_give_the_input_order_search_result():
    """Above LOCALITY_MIN targets the searches run in k-d tree leaf order; results come back in the targets' order and
    equal scipy's plain search (self-queries and foreign targets)."""
    from scipy.spatial import cKDTree

    from sptgnn.graph.relations import LOCALITY_MIN, RelationIndex

    rng = np.random.default_rng(3)
    ref = rng.normal(size=(LOCALITY_MIN + 500, 3))
    tgt = rng.normal(size=(LOCALITY_MIN + 100, 3))
    tree = cKDTree(ref)
    _, plain = tree.query(tgt, k=4)
    src, dst, _ = knn_edges(ref, tgt, 4, exclude_self=False)
    np.testing.assert_array_equal(src.reshape(-1, 4), plain)
    np.testing.assert_array_equal(dst.reshape(-1, 4), np.repeat(np.arange(len(tgt)), 4).reshape(-1, 4))
    _, plain_self = tree.query(ref, k=5)
    index = RelationIndex(["spatial"], {"spatial": 4}, 4, False).fit(ref)
    idx, _ = index.query(ref, exclude_self=True)["spatial"]
    np.testing.assert_array_equal(idx, plain_self[:, 1:])  # continuous data: the nearest is the point itself


def test_approximate_spectral_search_stays_within_its_bound():
    from sptgnn.graph.relations import RelationIndex

    rng = np.random.default_rng(4)
    ref, spec = rng.normal(size=(3000, 2)), rng.normal(size=(3000, 5))
    k = {"spatial": 4, "spectral": 6, "elevation": 2}
    exact = RelationIndex(["spectral"], k, 4, False).fit(ref, spec).query(ref, spec, exclude_self=True)["spectral"]
    approx = RelationIndex(["spectral"], k, 4, False, spectral_eps=0.5).fit(ref, spec).query(
        ref, spec, exclude_self=True)["spectral"]
    assert np.all(approx[1] <= exact[1] * 1.5 + 1e-12)  # the i-th returned distance within (1 + eps) of the true i-th
    assert np.all(approx[0] != np.arange(len(ref))[:, None])  # never its own neighbour
