"""GraphBuilder: no leakage through the graph (DESIGN.md rule 1), exact kNN edges, labelled-only statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.preprocessing import StandardScaler

from sptgnn.config import GraphConfig
from sptgnn.data.samples import SoilSamples
from sptgnn.geo import EARTH_RADIUS_M
from sptgnn.graph.builder import NODE, GraphBuilder, edge_type

CFG = GraphConfig(k_spatial=4, k_spectral=3, k_elevation=2, elevation_candidates=6)
K = {"spatial": 4, "spectral": 3, "elevation": 2}


def _haversine_m(a, b):
    lon1, lat1 = np.radians(a[:, None, 0]), np.radians(a[:, None, 1])
    lon2, lat2 = np.radians(b[None, :, 0]), np.radians(b[None, :, 1])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))


def _with_frame(samples: SoilSamples, frame) -> SoilSamples:
    return SoilSamples(frame=frame, targets=list(samples.targets), feature_groups=dict(samples.feature_groups),
                       elevation=samples.elevation, date_column=samples.date_column, name=samples.name)


def _extreme(query: SoilSamples, rows=None) -> SoilSamples:
    """The query samples with absurd feature values, elevations, targets and shifted coordinates at ``rows``."""
    frame = query.frame.copy()
    rows = list(range(len(frame))) if rows is None else rows
    for col in ["B02", "B04", "NDVI", "Slope", "Altitude", "soc_g_kg"]:
        frame.loc[rows, col] = frame.loc[rows, col] * 1e4 + 1e5
    geom = frame.geometry.copy()
    geom.loc[rows] = geom.loc[rows].translate(3e4, -2e4)
    frame = frame.set_geometry(geom)
    return _with_frame(query, frame)


def _edges(graph, rel):
    es = graph[edge_type(rel)]
    return es.edge_index.numpy(), es.edge_attr.numpy()[:, 0]


def _distances(builder, graph, rel):
    """Edges with distances recovered from ``edge_attr = log1p(distance / distance_scale)``."""
    (src, dst), attr = _edges(graph, rel)
    return src, dst, np.expm1(attr.astype(np.float64)) * builder.distance_scale[rel]


def _brute(reference, targets, k, exclude_self):
    d = cdist(targets, reference)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1)[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


@pytest.fixture
def built(split):
    lab, query = split
    builder = GraphBuilder(CFG).fit(lab)
    return builder, builder.build(query, "soc_g_kg"), lab, query


# -- rule 1: graph structure ---------------------------------------------------------------------------------------
def test_relations_and_node_layout(built):
    builder, graph, lab, query = built
    n_lab, n = len(lab), len(lab) + len(query)
    assert builder.relations == ["spatial", "spectral", "elevation"]
    assert set(graph.edge_types) == {edge_type(r) for r in K}
    store = graph[NODE]
    assert store.num_nodes == n
    np.testing.assert_array_equal(store.labelled.numpy(), np.arange(n) < n_lab)
    assert store.x_imagery.shape == (n, 3)
    assert store.x_environment.shape == (n, 2)
    assert store.pos.shape == (n, 2)
    assert store.time.shape == (n, 3)
    np.testing.assert_allclose(store.y[:n_lab].numpy(), lab.target(), rtol=1e-6)
    assert torch.isnan(store.y[n_lab:]).all()


@pytest.mark.parametrize("rel", list(K))
def test_no_edge_leaves_or_joins_query_nodes_and_no_self_loops(built, rel):
    _, graph, lab, query = built
    n_lab = len(lab)
    (src, dst), _ = _edges(graph, rel)
    assert (src < n_lab).all(), "an edge leaves a query node"
    assert not ((src >= n_lab) & (dst >= n_lab)).any(), "an edge joins two query nodes"
    assert not (src == dst).any(), "self loop"
    assert (dst < n_lab + len(query)).all()


@pytest.mark.parametrize("rel", list(K))
def test_every_node_has_the_configured_in_degree(built, rel):
    _, graph, lab, query = built
    (src, dst), attr = _edges(graph, rel)
    n = len(lab) + len(query)
    np.testing.assert_array_equal(np.bincount(dst, minlength=n), np.full(n, K[rel]))
    assert attr.shape == (len(src),)
    assert np.isfinite(attr).all()
    assert (attr >= 0).all()
    # no node is attached twice to the same neighbour in one relation
    assert len(set(zip(src.tolist(), dst.tolist()))) == len(src)


def test_build_without_query_is_the_labelled_part(built):
    builder, graph, lab, _ = built
    alone = builder.build(None, "soc_g_kg")
    n_lab = len(lab)
    assert alone[NODE].num_nodes == n_lab
    for rel in K:
        (src, dst), attr = _edges(graph, rel)
        keep = dst < n_lab
        (s2, d2), a2 = _edges(alone, rel)
        np.testing.assert_array_equal(np.vstack([src[keep], dst[keep]]), np.vstack([s2, d2]))
        np.testing.assert_array_equal(attr[keep], a2)


# -- rule 1: statistics fitted on labelled nodes only ---------------------------------------------------------------
def test_feature_transform_equals_standard_scaler_on_labelled_rows(built):
    builder, graph, lab, query = built
    t = builder.transform
    for stream, cols in [("imagery", ["B02", "B04", "NDVI"]), ("environment", ["Slope", "Altitude"])]:
        scaler = StandardScaler().fit(lab.frame[cols].to_numpy())
        np.testing.assert_allclose(t.mean[stream], scaler.mean_, rtol=1e-12)
        np.testing.assert_allclose(t.scale[stream], scaler.scale_, rtol=1e-12)
        both = pd.concat([lab.frame[cols], query.frame[cols]]).to_numpy()
        np.testing.assert_allclose(graph[NODE][f"x_{stream}"].numpy(), scaler.transform(both), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(t.fitted_ids, lab.sample_ids)
    # the statistics of all samples differ, so the comparison above can detect a leak
    all_cols = pd.concat([lab.frame, query.frame])[["B02", "B04", "NDVI"]].to_numpy()
    assert not np.allclose(t.mean["imagery"], all_cols.mean(0), rtol=1e-6)


def test_constant_feature_gets_unit_scale(samples_factory):
    s = samples_factory(n=20)
    frame = s.frame.copy()
    frame["Slope"] = 3.0
    s = _with_frame(s, frame)
    builder = GraphBuilder(CFG).fit(s)
    assert builder.transform.scale["environment"][0] == 1.0
    np.testing.assert_allclose(builder.build()[NODE].x_environment[:, 0].numpy(), 0.0)


def test_position_and_time_streams(built):
    builder, graph, lab, query = built
    store = graph[NODE]
    centre = lab.xy().mean(0)
    spread = np.sqrt(np.mean(np.sum((lab.xy() - centre) ** 2, axis=1)))  # RMS distance of labelled nodes from it
    assert builder.transform.spread_m == pytest.approx(spread, rel=1e-12)
    expected = (np.r_[lab.xy(), query.xy()] - centre) / spread
    np.testing.assert_allclose(store.pos.numpy(), expected, rtol=1e-5, atol=1e-6)
    dates = pd.to_datetime(np.r_[lab.frame["date"].to_numpy(), query.frame["date"].to_numpy()])
    ref_year = lab.frame["date"].dt.year.mean()
    doy = np.array([d.timetuple().tm_yday for d in dates])
    expected_time = np.c_[(dates.year - ref_year) / 10, np.sin(2 * np.pi * (doy - 1) / 365.25), np.cos(2 * np.pi * (doy - 1) / 365.25)]
    np.testing.assert_allclose(store.time.numpy(), expected_time, atol=1e-6)


def test_changing_queries_changes_nothing_labelled(built):
    builder, graph, lab, query = built
    mean = {k: v.copy() for k, v in builder.transform.mean.items()}
    scale = {k: v.copy() for k, v in builder.transform.scale.items()}
    centre = builder.transform.centre_m.copy()
    spread = builder.transform.spread_m
    dscale = dict(builder.distance_scale)
    n_lab = len(lab)

    extreme = builder.build(_extreme(query), "soc_g_kg")
    more = builder.build(_with_frame(query, pd.concat([query.frame, _extreme(query).frame.assign(
        sample_id=lambda f: f["sample_id"] + "x")], ignore_index=True)), "soc_g_kg")

    for k in mean:
        np.testing.assert_array_equal(builder.transform.mean[k], mean[k])
        np.testing.assert_array_equal(builder.transform.scale[k], scale[k])
    np.testing.assert_array_equal(builder.transform.centre_m, centre)
    assert builder.transform.spread_m == spread
    assert builder.distance_scale == dscale
    for other in (extreme, more):
        for attr in ("x_imagery", "x_environment", "pos", "time", "y"):
            torch.testing.assert_close(other[NODE][attr][:n_lab], graph[NODE][attr][:n_lab], rtol=0, atol=0, equal_nan=True)
        for rel in K:
            (src, dst), a = _edges(graph, rel)
            (s2, d2), a2 = _edges(other, rel)
            keep, keep2 = dst < n_lab, d2 < n_lab
            np.testing.assert_array_equal(np.vstack([src[keep], dst[keep]]), np.vstack([s2[keep2], d2[keep2]]))
            np.testing.assert_array_equal(a[keep], a2[keep2])
            assert (s2 < n_lab).all()
    # a query's edges do not depend on the other queries either
    only_first = builder.build(query.subset(np.array([0])), "soc_g_kg")
    for rel in K:
        (src, dst), a = _edges(graph, rel)
        (s2, d2), a2 = _edges(only_first, rel)
        np.testing.assert_array_equal(src[dst == n_lab], s2[d2 == n_lab])
        np.testing.assert_array_equal(a[dst == n_lab], a2[d2 == n_lab])


def test_refitting_with_other_queries_around_gives_the_same_builder(split):
    lab, query = split
    a = GraphBuilder(CFG).fit(lab)
    a.build(query)
    b = GraphBuilder(CFG).fit(lab)
    b.build(_extreme(query))
    assert a.distance_scale == b.distance_scale
    for k in a.transform.mean:
        np.testing.assert_array_equal(a.transform.mean[k], b.transform.mean[k])


def test_distance_scale_is_median_labelled_edge_distance(built):
    builder, graph, lab, _ = built
    d_spatial = cdist(lab.xy(), lab.xy())
    np.fill_diagonal(d_spatial, np.inf)
    expected = np.median(np.sort(d_spatial, axis=1)[:, :K["spatial"]])
    assert builder.distance_scale["spatial"] == pytest.approx(expected, rel=1e-12)


# -- exact neighbours ------------------------------------------------------------------------------------------------
def _check_knn(builder, graph, rel, ref, lab_pts, query_pts, k, rtol=1e-5):
    n_lab = len(lab_pts)
    src, dst, dist = _distances(builder, graph, rel)
    idx_l, d_l = _brute(ref, lab_pts, k, exclude_self=True)
    idx_q, d_q = _brute(ref, query_pts, k, exclude_self=False)
    for t in range(n_lab + len(query_pts)):
        idx, d = (idx_l[t], d_l[t]) if t < n_lab else (idx_q[t - n_lab], d_q[t - n_lab])
        sel = dst == t
        assert set(src[sel].tolist()) == set(idx.tolist()), (rel, t)
        np.testing.assert_allclose(np.sort(dist[sel]), d, rtol=rtol, atol=1e-9)


def test_spatial_edges_equal_brute_force(built):
    builder, graph, lab, query = built
    _check_knn(builder, graph, "spatial", lab.xy(), lab.xy(), query.xy(), K["spatial"])


def test_spectral_edges_equal_brute_force_in_labelled_standardised_space(built):
    builder, graph, lab, query = built
    cols = ["B02", "B04", "NDVI"]
    scaler = StandardScaler().fit(lab.frame[cols].to_numpy())
    z_lab, z_q = scaler.transform(lab.frame[cols].to_numpy()), scaler.transform(query.frame[cols].to_numpy())
    _check_knn(builder, graph, "spectral", z_lab, z_lab, z_q, K["spectral"])


def test_spectral_relation_uses_environment_without_imagery(samples_factory):
    s = samples_factory(n=30)
    s = SoilSamples(frame=s.frame, targets=["soc_g_kg"], feature_groups={"environment": ["Slope", "Altitude"]},
                    elevation="Altitude", name="noimg")
    builder = GraphBuilder(CFG).fit(s)
    z = StandardScaler().fit_transform(s.frame[["Slope", "Altitude"]].to_numpy())
    graph = builder.build()
    _check_knn(builder, graph, "spectral", z, z, np.zeros((0, 2)), K["spectral"])


def test_elevation_edges_equal_brute_force(built):
    builder, graph, lab, query = built
    src, dst, dist = _distances(builder, graph, "elevation")
    e_lab, e_q = lab.elevation_m(), query.elevation_m()
    n_lab = len(lab)
    for t in range(n_lab + len(query)):
        if t < n_lab:
            d = cdist(lab.xy()[t:t + 1], lab.xy())[0]
            d[t] = np.inf
            e_t = e_lab[t]
        else:
            d = cdist(query.xy()[t - n_lab:t - n_lab + 1], lab.xy())[0]
            e_t = e_q[t - n_lab]
        candidates = np.argsort(d)[:CFG.elevation_candidates]
        diff = np.abs(e_lab[candidates] - e_t)
        chosen = candidates[np.argsort(diff)[:K["elevation"]]]
        sel = dst == t
        assert set(src[sel].tolist()) == set(chosen.tolist()), t
        np.testing.assert_allclose(np.sort(dist[sel]), np.sort(np.abs(e_lab[chosen] - e_t)), rtol=1e-5, atol=1e-6)


def test_elevation_relation_is_dropped_without_elevation(samples_factory):
    s = samples_factory(n=20, with_elevation=False)
    with pytest.warns(UserWarning, match="no elevation"):
        builder = GraphBuilder(CFG).fit(s)
    assert builder.relations == ["spatial", "spectral"]
    assert edge_type("elevation") not in builder.build().edge_types


def test_geographic_crs_gives_great_circle_distances(geo_samples_factory):
    geo = geo_samples_factory(n=40, seed=2)
    lab, query = geo.subset(np.arange(40) < 32), geo.subset(np.arange(40) >= 32)
    builder = GraphBuilder(GraphConfig(relations=["spatial"], k_spatial=5)).fit(lab)
    graph = builder.build(query, "soc_g_kg")
    src, dst, dist = _distances(builder, graph, "spatial")
    hv_lab = _haversine_m(lab.xy(), lab.xy())
    np.fill_diagonal(hv_lab, np.inf)
    hv_q = _haversine_m(query.xy(), lab.xy())
    n_lab = len(lab)
    lab_dists = []
    for t in range(len(geo)):
        row = hv_lab[t] if t < n_lab else hv_q[t - n_lab]
        nearest = np.argsort(row)[:5]
        sel = dst == t
        assert set(src[sel].tolist()) == set(nearest.tolist()), t
        np.testing.assert_allclose(np.sort(dist[sel]), row[nearest], rtol=1e-5)
        if t < n_lab:
            lab_dists.append(row[nearest])
    # the edge scale is the median great-circle distance (metres), not a chord or a degree distance
    assert builder.distance_scale["spatial"] == pytest.approx(np.median(np.concatenate(lab_dists)), rel=1e-9)
    assert builder.distance_scale["spatial"] > 10_000


def test_position_of_geographic_samples_is_unit_sphere_metres(geo_samples_factory):
    geo = geo_samples_factory(n=20)
    builder = GraphBuilder(GraphConfig(relations=["spatial"], k_spatial=3)).fit(geo)
    pos = builder.build()[NODE].pos.numpy().astype(np.float64)
    assert pos.shape == (20, 3)
    # centred on the labelled centroid and scaled by the RMS distance from it (chord metres)
    np.testing.assert_allclose(pos.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.mean(np.sum(pos**2, axis=1)), 1.0, rtol=1e-5)
    xyz = geo.metric_coords()
    spread = np.sqrt(np.mean(np.sum((xyz - xyz.mean(0)) ** 2, axis=1)))
    assert builder.transform.spread_m == pytest.approx(spread, rel=1e-9)


# -- errors and reuse ------------------------------------------------------------------------------------------------
def test_build_before_fit():
    with pytest.raises(RuntimeError, match="before fit"):
        GraphBuilder(CFG).build()
    with pytest.raises(RuntimeError, match="before fit"):
        GraphBuilder(CFG).with_labelled(None)


def test_fit_needs_two_samples(samples):
    with pytest.raises(ValueError, match="at least 2"):
        GraphBuilder(CFG).fit(samples.subset(np.array([0])))


def test_query_with_other_feature_columns_is_rejected(built):
    builder, _, _, query = built
    other = SoilSamples(frame=query.frame, targets=["soc_g_kg"], feature_groups={"imagery": ["B02"], "environment": ["Slope", "Altitude"]},
                        elevation="Altitude", name="other")
    with pytest.raises(ValueError, match="differ from the fitted"):
        builder.build(other)


def test_with_labelled_reuses_the_fitted_statistics(split):
    lab, query = split
    builder = GraphBuilder(CFG).fit(lab)
    part = lab.subset(np.arange(len(lab)) < 30)
    other = builder.with_labelled(part)
    assert other.transform is builder.transform
    assert other.distance_scale == builder.distance_scale
    graph = other.build(query, "soc_g_kg")
    assert graph[NODE].num_nodes == 30 + len(query)
    (src, dst), _ = _edges(graph, "spatial")
    assert (src < 30).all()
    np.testing.assert_array_equal(np.bincount(dst, minlength=30 + len(query)), K["spatial"])


def test_spectral_relation_over_imagery_and_environment(split):
    lab, query = split
    builder = GraphBuilder(GraphConfig(k_spectral=3, spectral_streams=["imagery", "environment"])).fit(lab)
    cols = lab.feature_groups["imagery"] + lab.feature_groups["environment"]
    scaler = StandardScaler().fit(lab.frame[cols].to_numpy(float))
    ref, tgt = scaler.transform(lab.frame[cols].to_numpy(float)), scaler.transform(query.frame[cols].to_numpy(float))
    graph = builder.build(query, "soc_g_kg")
    ei = graph[edge_type("spectral")].edge_index.numpy()
    q_edges = ei[:, ei[1] >= len(lab)]
    expected = np.argsort(cdist(tgt, ref), axis=1)[:, :3]
    for i in range(len(query)):
        assert set(q_edges[0, q_edges[1] == len(lab) + i]) == set(expected[i])


def test_labelled_edges_are_searched_once_and_equal_a_fresh_search(split, monkeypatch):
    from sptgnn.graph.relations import RelationIndex

    train, query = split
    calls = []
    original = RelationIndex.edges

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("exclude_self", args[3] if len(args) > 3 else False))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RelationIndex, "edges", counted)
    builder = GraphBuilder(GraphConfig()).fit(train)
    first, second = builder.build(query, "soc_g_kg"), builder.build(None, "soc_g_kg")
    assert calls.count(True) == 1  # every relation's labelled edges in one search, for fit and both builds
    monkeypatch.setattr(RelationIndex, "edges", original)
    fresh = GraphBuilder(GraphConfig()).fit(train).build(query, "soc_g_kg")
    for rel in builder.relations:
        torch.testing.assert_close(first[edge_type(rel)].edge_index, fresh[edge_type(rel)].edge_index)
        torch.testing.assert_close(first[edge_type(rel)].edge_attr, fresh[edge_type(rel)].edge_attr)
        n = int(second[edge_type(rel)].edge_index.shape[1])
        torch.testing.assert_close(second[edge_type(rel)].edge_index, fresh[edge_type(rel)].edge_index[:, :n])
