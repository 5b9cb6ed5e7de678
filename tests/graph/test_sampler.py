"""Subgraph sampler: a seed's output on its subgraph equals its output on the whole graph; mini-batch training works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sptgnn.graph.builder import NODE, GraphBuilder, edge_type
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.nn.model import SpTGNN
from sptgnn.train.ensemble import DeepEnsemble
from sptgnn.train.trainer import predict_nodes, stream_dims, train_member


@pytest.fixture
def graph(split, config_factory):
    labelled, query = split
    cfg = config_factory()
    return GraphBuilder(cfg.graph).fit(labelled).build(query, "soc_g_kg"), cfg


def test_subgraph_holds_seeds_first_and_exact_in_edges(graph):
    g, _ = graph
    sampler = InNeighbourSampler(g, num_hops=1)
    seeds = torch.tensor([3, 50, 7])
    sub = sampler.sample(seeds)
    n_id = sub[NODE].n_id
    assert torch.equal(n_id[:3], seeds)
    assert sub.num_seeds == 3
    assert len(set(n_id.tolist())) == len(n_id)
    for et in g.edge_types:
        full = g[et].edge_index
        expected = {(int(s), int(d)) for s, d in full.t() if int(d) in seeds.tolist()}
        got = {(int(n_id[s]), int(n_id[d])) for s, d in sub[et].edge_index.t()}
        assert got == expected
    np.testing.assert_array_equal(sub[NODE].x_environment.numpy(), g[NODE].x_environment[n_id].numpy())


@pytest.mark.parametrize("layers", [1, 2])
def test_seed_outputs_equal_whole_graph_outputs(graph, config_factory, layers):
    g, _ = graph
    cfg = config_factory(model={"num_layers": layers, "label_inputs": True})
    model = SpTGNN(cfg.model, ["spatial", "spectral", "elevation"], stream_dims(g), 0).eval()
    labels = torch.where(g[NODE].labelled, torch.randn(g[NODE].num_nodes), torch.nan)
    with torch.no_grad():
        whole = model(g, labels)
    seeds = torch.tensor([0, 5, 48, 55])  # labelled and query nodes
    mean, var = predict_nodes(model, InNeighbourSampler(g, layers), seeds, labels, batch_size=3)
    torch.testing.assert_close(mean, whole.mean[seeds], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(var, whole.var[seeds], rtol=1e-5, atol=1e-5)


def test_zero_hops_is_seeds_only(graph):
    g, _ = graph
    sub = InNeighbourSampler(g, 0).sample(torch.tensor([1, 2]))
    assert sub[NODE].num_nodes == 2
    assert all(sub[et].edge_index.shape == (2, 0) for et in sub.edge_types)
    with pytest.raises(ValueError, match="num_hops"):
        InNeighbourSampler(g, -1)


def test_query_nodes_never_enter_a_subgraph_as_neighbours(graph):
    g, _ = graph
    sub = InNeighbourSampler(g, 2).sample(torch.arange(0, 48, 3))
    assert bool(g[NODE].labelled[sub[NODE].n_id].all())


def test_batched_training_learns_and_stops(graph, config_factory):
    g, _ = graph
    cfg = config_factory(train={"batch_size": 16, "epochs": 8, "patience": 3, "ema_decay": 0.9})
    y = g[NODE].y.clone()
    y_std = (y - y[g[NODE].labelled].mean()) / y[g[NODE].labelled].std()
    y_std[~g[NODE].labelled] = torch.randn(int((~g[NODE].labelled).sum()))
    res = train_member(g, y_std, cfg, seed=0)
    assert len(res.history["train_loss"]) == len(res.history["val_score"]) <= 8
    assert 0 <= res.best_epoch < 8
    assert not res.model.training
    # refit mode: exactly the given epochs, no validation
    res2 = train_member(g, y_std, cfg, seed=0, epochs=3)
    assert len(res2.history["train_loss"]) == 3
    assert res2.history["val_score"] == []
    assert res2.best_epoch == 2


def test_batched_ensemble_predicts_like_full_graph(split, config_factory):
    labelled, query = split
    cfg = config_factory(train={"batch_size": 8, "epochs": 3, "members": 2})
    ens = DeepEnsemble(cfg).fit(labelled)
    batched = ens.predict(query)
    ens.config = config_factory(train={"batch_size": None, "members": 2})  # same members, whole-graph forward
    whole = ens.predict(query)
    np.testing.assert_allclose(batched.mean, whole.mean, rtol=1e-5)
    np.testing.assert_allclose(batched.sd, whole.sd, rtol=1e-5)
    assert edge_type("spatial") in ens.builder.build(query).edge_types


def test_random_validation_split_trains(split, config_factory, monkeypatch):
    import sptgnn.train.member_tasks as member_tasks

    labelled, query = split
    called = []
    monkeypatch.setattr(member_tasks, "spatial_holdout", lambda *a, **k: called.append(1))
    cfg = config_factory(train={"batch_size": 8, "epochs": 2, "members": 1, "val_split": "random"})
    pred = DeepEnsemble(cfg).fit(labelled).predict(query)
    assert not called  # no spatial blocks were cut
    assert np.isfinite(pred.mean).all()


def test_block_masked_batches_keep_blocks_whole(split, config_factory):
    from sptgnn.train.node_inputs import attach_mask_blocks as _attach_mask_blocks
    from sptgnn.train.trainer import _seed_batches

    labelled, query = split
    cfg = config_factory()
    g = GraphBuilder(cfg.graph).fit(labelled).build(query, "soc_g_kg")
    _attach_mask_blocks(g, labelled, len(query), 0.5)  # 500 m blocks over a 2 km square
    blocks = g[NODE].mask_block
    assert (blocks[len(labelled):] == -1).all()
    batches = _seed_batches(g, len(labelled), 5, torch.Generator().manual_seed(0))
    seen = torch.cat(batches)
    assert sorted(seen.tolist()) == list(range(len(labelled)))  # every labelled node once per epoch
    for b in batches:  # a batch holds whole blocks: no seed's block-mate is visible to it
        for blk in blocks[b].unique():
            assert set(torch.nonzero(blocks == blk).flatten().tolist()) <= set(b.tolist())


def test_feature_clip_bounds_standardised_features(split, config_factory):
    labelled, query = split
    labelled.frame.loc[0, "Slope"] = 1e6  # an outlier inflates nothing beyond the clip
    query.frame.loc[0, "Slope"] = -1e9
    g = GraphBuilder(config_factory(graph={"feature_clip": 3.0}).graph).fit(labelled).build(query, "soc_g_kg")
    x = torch.cat([g[NODE].x_imagery, g[NODE].x_environment], 1)
    assert float(x.abs().max()) == pytest.approx(3.0)
    g0 = GraphBuilder(config_factory().graph).fit(labelled).build(query, "soc_g_kg")
    assert float(g0[NODE].x_environment.abs().max()) > 3.0


def _edge_set(sub, et):
    n_id = sub[NODE].n_id
    return {(int(n_id[s]), int(n_id[d])) for s, d in sub[et].edge_index.t()}


def test_fanout_at_or_above_every_in_degree_is_the_full_neighbourhood(graph, config_factory):
    g, _ = graph
    max_degree = max(int(torch.bincount(g[et].edge_index[1]).max()) for et in g.edge_types)
    seeds = torch.tensor([0, 5, 48, 55])
    full = InNeighbourSampler(g, 2).sample(seeds)
    wide = InNeighbourSampler(g, 2, fanout=[max_degree, max_degree + 3]).sample(seeds)
    assert set(full[NODE].n_id.tolist()) == set(wide[NODE].n_id.tolist())
    assert all(_edge_set(full, et) == _edge_set(wide, et) for et in g.edge_types)
    cfg = config_factory(model={"num_layers": 2, "label_inputs": True})
    model = SpTGNN(cfg.model, ["spatial", "spectral", "elevation"], stream_dims(g), 0).eval()
    labels = torch.where(g[NODE].labelled, torch.randn(g[NODE].num_nodes), torch.nan)
    with torch.no_grad():
        ref = model(full, labels[full[NODE].n_id]).mean[:4]
        got = model(wide, labels[wide[NODE].n_id]).mean[:4]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_fanout_bounds_in_edges_and_subgraph_size(graph):
    g, _ = graph
    seeds, fanout, relations = torch.tensor([1, 9, 20]), [2, 1], len(g.edge_types)
    sub = InNeighbourSampler(g, 2, fanout=fanout, generator=torch.Generator().manual_seed(0)).sample(seeds)
    assert torch.equal(sub[NODE].n_id[:3], seeds)
    assert sub[NODE].num_nodes <= 3 * (1 + relations * 2 + relations * 2 * relations * 1)
    for et in g.edge_types:
        got = _edge_set(sub, et)
        whole = {(int(s), int(d)) for s, d in g[et].edge_index.t()}
        assert got <= whole  # sampled edges are edges of the graph
        into_seeds = [d for _, d in got if d in seeds.tolist()]
        assert all(into_seeds.count(s) == min(2, int((g[et].edge_index[1] == s).sum())) for s in seeds.tolist())
        assert max(torch.bincount(sub[et].edge_index[1]).tolist(), default=0) <= 2
    again = InNeighbourSampler(g, 2, fanout=fanout, generator=torch.Generator().manual_seed(0)).sample(seeds)
    assert torch.equal(again[NODE].n_id, sub[NODE].n_id)  # same generator state, same draw
    with pytest.raises(ValueError, match="fanout"):
        InNeighbourSampler(g, 2, fanout=[2])


def test_fanout_config_needs_one_value_per_layer_and_trains(graph, config_factory):
    from sptgnn.config import Config

    with pytest.raises(ValueError, match="train.fanout"):
        Config(model={"num_layers": 2}, train={"fanout": [4]})
    cfg = config_factory(train={"batch_size": 8, "epochs": 2, "fanout": [2, 2]}, model={"num_layers": 2})
    g, _ = graph
    y = g[NODE].y.clone()
    y_std = torch.nan_to_num((y - y[g[NODE].labelled].mean()) / y[g[NODE].labelled].std())
    res = train_member(g, y_std, cfg, seed=0)
    assert len(res.history["train_loss"]) == 2
    assert np.all(np.isfinite(res.history["train_loss"]))
