"""SpTGNN member: shapes, variance floor, rule 1 (a query depends on labelled nodes and itself only) and label inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sptgnn.config import GraphConfig, ModelConfig
from sptgnn.data.samples import SoilSamples
from sptgnn.graph.builder import NODE, GraphBuilder, edge_type
from sptgnn.nn.model import SpTGNN
from sptgnn.train.trainer import stream_dims

STREAM_ATTRS = ("x_imagery", "x_environment", "pos", "time")
GCFG = GraphConfig(k_spatial=4, k_spectral=3, k_elevation=2, elevation_candidates=6)


def _model_config(**kw) -> ModelConfig:
    base = dict(hidden=16, num_experts=3, top_k=2, num_layers=2, heads=2, dropout=0.0, position_frequencies=4,
                position_scales=[0.5, 2.0], label_inputs=True)
    base.update(kw)
    return ModelConfig(**base)


def _model(graph, builder, seed=0, **kw) -> SpTGNN:
    torch.manual_seed(seed)
    return SpTGNN(_model_config(**kw), builder.relations, stream_dims(graph), seed).eval()


def _labels(graph) -> torch.Tensor:
    """Standardised labels of labelled nodes, NaN for query nodes (as the ensemble feeds them)."""
    y = graph[NODE].y
    z = (y - torch.nanmean(y)) / 5.0
    return torch.where(graph[NODE].labelled, z, torch.nan)


@pytest.fixture
def setup(split):
    lab, query = split
    builder = GraphBuilder(GCFG).fit(lab)
    graph = builder.build(query, "soc_g_kg")
    return builder, graph, lab, query


def _in_neighbours(graph, node: int) -> set[int]:
    out = set()
    for et in graph.edge_types:
        src, dst = graph[et].edge_index
        out |= set(src[dst == node].tolist())
    return out


@pytest.mark.parametrize("label_inputs", [True, False])
@pytest.mark.parametrize("num_layers", [0, 1, 2])
def test_output_shapes_and_variance_floor(setup, label_inputs, num_layers):
    builder, graph, lab, query = setup
    n = len(lab) + len(query)
    model = _model(graph, builder, label_inputs=label_inputs, num_layers=num_layers, var_floor=0.25)
    out = model(graph, _labels(graph) if label_inputs else None)
    assert out.mean.shape == out.var.shape == (n,)
    assert out.gates.shape == (n, 3)
    assert out.balance_loss.shape == ()
    assert torch.isfinite(out.mean).all()
    assert (out.var >= 0.25).all()
    model.train()
    out = model(graph, _labels(graph) if label_inputs else None)
    assert (out.var > 0).all()
    assert (out.var >= 0.25).all()


def test_var_is_softplus_plus_floor_even_for_extreme_inputs(setup):
    builder, graph, lab, query = setup
    model = _model(graph, builder, var_floor=1e-4)
    g = graph.clone()
    g[NODE].x_imagery = g[NODE].x_imagery * 1e3
    out = model(g, _labels(g))
    assert (out.var >= 1e-4).all()


def test_streams_follow_the_config(setup):
    builder, graph, *_ = setup
    model = _model(graph, builder, streams=["imagery", "time"])
    assert model.streams == ["imagery", "time"]
    assert set(model.encoders) == {"imagery", "time"}
    with pytest.raises(ValueError, match="no stream has features"):
        SpTGNN(_model_config(streams=["imagery"]), builder.relations, {"imagery": 0, "environment": 2}, 0)


# -- rule 1 ---------------------------------------------------------------------------------------------------------
def test_query_prediction_ignores_other_query_features(setup):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder)
    labels = _labels(graph)
    base = model(graph, labels)
    changed = graph.clone()
    gen = torch.Generator().manual_seed(5)
    for attr in STREAM_ATTRS:
        v = changed[NODE][attr].clone()
        v[n_lab + 1:] = torch.randn(v[n_lab + 1:].shape, generator=gen) * 100
        changed[NODE][attr] = v
    out = model(changed, labels)
    torch.testing.assert_close(out.mean[n_lab], base.mean[n_lab], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.var[n_lab], base.var[n_lab], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.mean[:n_lab], base.mean[:n_lab], rtol=1e-5, atol=1e-6)
    # the changed query nodes' own predictions did change, so the comparison is not vacuous
    assert not torch.allclose(out.mean[n_lab + 1:], base.mean[n_lab + 1:], atol=1e-3)


def test_query_prediction_ignores_other_queries_rebuilt_from_samples(setup):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder)
    frame = query.frame.copy()
    for col in ["B02", "B04", "NDVI", "Slope", "Altitude"]:
        frame.loc[1:, col] = frame.loc[1:, col] * 50 - 7
    geom = frame.geometry.copy()
    geom.loc[1:] = geom.loc[1:].translate(5000, 5000)
    frame = frame.set_geometry(geom)
    other = SoilSamples(frame=frame, targets=query.targets, feature_groups=query.feature_groups, elevation=query.elevation,
                        date_column=query.date_column, name="q")
    g2 = builder.build(other, "soc_g_kg")
    alone = builder.build(query.subset(np.array([0])), "soc_g_kg")
    base = model(graph, _labels(graph))
    for g in (g2, alone):
        out = model(g, _labels(g))
        torch.testing.assert_close(out.mean[n_lab], base.mean[n_lab], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.var[n_lab], base.var[n_lab], rtol=1e-5, atol=1e-6)


def test_query_labels_given_to_other_queries_do_not_reach_a_query(setup):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder)
    labels = _labels(graph)
    base = model(graph, labels)
    leaked = labels.clone()
    leaked[n_lab + 1:] = torch.linspace(-3, 3, len(query) - 1)
    out = model(graph, leaked)
    torch.testing.assert_close(out.mean[:n_lab + 1], base.mean[:n_lab + 1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.var[:n_lab + 1], base.var[:n_lab + 1], rtol=1e-5, atol=1e-6)


def test_builder_never_shows_query_labels(setup):
    _, graph, lab, _ = setup
    assert torch.isnan(graph[NODE].y[len(lab):]).all()


# -- labels propagate ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_layers", [1, 2])
def test_labelled_neighbour_label_changes_the_query_prediction(setup, num_layers):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder, num_layers=num_layers)
    labels = _labels(graph)
    base = model(graph, labels)
    q = n_lab + 2
    j = sorted(_in_neighbours(graph, q))[0]
    assert j < n_lab
    changed = labels.clone()
    changed[j] = changed[j] + 3.0
    out = model(graph, changed)
    assert abs(float((out.mean[q] - base.mean[q]).detach())) > 1e-4
    # hiding that label also changes it
    hidden = labels.clone()
    hidden[j] = torch.nan
    assert abs(float((model(graph, hidden).mean[q] - base.mean[q]).detach())) > 1e-5


def test_one_layer_sees_only_direct_neighbours_labels(setup):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder, num_layers=1)
    labels = _labels(graph)
    base = model(graph, labels)
    q = n_lab + 2
    far = sorted(set(range(n_lab)) - _in_neighbours(graph, q))[0]
    changed = labels.clone()
    changed[far] = changed[far] + 3.0
    out = model(graph, changed)
    torch.testing.assert_close(out.mean[q], base.mean[q], rtol=1e-5, atol=1e-6)


def test_no_layers_means_a_node_sees_only_itself(setup):
    builder, graph, lab, query = setup
    n_lab = len(lab)
    model = _model(graph, builder, num_layers=0)
    labels = _labels(graph)
    base = model(graph, labels)
    g = graph.clone()
    for attr in STREAM_ATTRS:
        v = g[NODE][attr].clone()
        v[:n_lab] = v[:n_lab] * 3 + 1
        g[NODE][attr] = v
    out = model(g, labels + 1.0)
    torch.testing.assert_close(out.mean[n_lab:], base.mean[n_lab:], rtol=1e-5, atol=1e-6)


def test_label_inputs_off_ignores_labels(setup):
    builder, graph, *_ = setup
    model = _model(graph, builder, label_inputs=False)
    assert model.label_encoder is None
    a = model(graph, None)
    b = model(graph, _labels(graph))
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=0)


def test_missing_label_value_means_all_hidden(setup):
    builder, graph, *_ = setup
    model = _model(graph, builder)
    n = graph[NODE].num_nodes
    a = model(graph, None)
    b = model(graph, torch.full((n,), torch.nan))
    torch.testing.assert_close(a.mean, b.mean, rtol=0, atol=0)


def test_works_with_a_subset_of_relations(split):
    lab, query = split
    builder = GraphBuilder(GraphConfig(relations=["spectral"], k_spectral=3)).fit(lab)
    graph = builder.build(query, "soc_g_kg")
    assert graph.edge_types == [edge_type("spectral")]
    model = _model(graph, builder)
    assert model(graph, _labels(graph)).mean.shape == (len(lab) + len(query),)


def test_gradients_reach_encoders_attention_and_head(setup):
    builder, graph, lab, _ = setup
    model = _model(graph, builder).train()
    out = model(graph, _labels(graph))
    (out.mean[: len(lab)].pow(2).sum() + out.var.sum() + out.balance_loss).backward()
    for name in ("encoders.imagery", "encoders.environment", "encoders.position", "encoders.time", "label_encoder",
                 "layers.0", "layers.1", "head", "moe.router"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads, name
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_linear_skip_adds_a_linear_read_out_of_the_tabular_streams(setup):
    builder, graph, lab, query = setup
    model = _model(graph, builder, linear_skip=True)
    labels = _labels(graph)
    out = model(graph, labels)
    store = graph[NODE]
    x = torch.cat([store.x_imagery, store.x_environment], dim=-1)
    h = model.embed(graph, labels)[0]
    ei = {edge_type(r): graph[edge_type(r)].edge_index for r in model.relations}
    ea = {edge_type(r): graph[edge_type(r)].edge_attr for r in model.relations}
    for layer in model.layers:
        h = layer(h, ei, ea)
    head_mean, _ = model.head(h)
    expected = head_mean + x @ model.linear_skip.weight[0] + model.linear_skip.bias[0]
    torch.testing.assert_close(out.mean, expected)
    assert _model(graph, builder).linear_skip is None
