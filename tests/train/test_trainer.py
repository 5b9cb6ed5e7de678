"""Training of one member: determinism, early stopping, best-epoch restore and leak-free label inputs (rule 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

import sptgnn.train.trainer as trainer_mod
from sptgnn.graph.builder import NODE, GraphBuilder
from sptgnn.losses import beta_nll, gaussian_nll
from sptgnn.nn.model import SpTGNN
from sptgnn.splits import spatial_holdout
from sptgnn.train.target import TargetTransform
from sptgnn.train.objective import objective as _objective, validation_score as _validation_score
from sptgnn.train.trainer import _subgraph_edges, train_member


@pytest.fixture
def problem(split, config_factory):
    lab, query = split
    config = config_factory(model={"num_layers": 2})
    builder = GraphBuilder(config.graph).fit(lab)
    graph = builder.build(query, "soc_g_kg")
    tt = TargetTransform("log1p").fit(lab.target())
    y_std = torch.tensor(tt.transform(np.r_[lab.target(), query.target()]), dtype=torch.float32)
    return graph, y_std, config, len(lab)


def _val_rmse(model, graph, y_std, label_inputs=True):
    labelled = graph[NODE].labelled
    with torch.no_grad():
        out = model(graph, torch.where(labelled, y_std, torch.nan) if label_inputs else None)
    q = ~labelled
    return float(((y_std[q] - out.mean[q]) ** 2).mean().sqrt())


def test_same_seed_gives_identical_models(problem):
    graph, y_std, config, _ = problem
    a = train_member(graph, y_std, config, seed=3)
    b = train_member(graph, y_std, config, seed=3)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.history == b.history
    assert a.best_epoch == b.best_epoch
    with torch.no_grad():
        torch.testing.assert_close(a.model(graph).mean, b.model(graph).mean, rtol=0, atol=0)


def test_other_seed_gives_another_model(problem):
    graph, y_std, config, _ = problem
    a = train_member(graph, y_std, config, seed=0)
    b = train_member(graph, y_std, config, seed=1)
    assert any(not torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())


def test_training_mode_with_dropout_and_noise_is_still_deterministic(problem, config_factory):
    graph, y_std, _, _ = problem
    config = config_factory(model={"dropout": 0.3, "router_noise": 1.0}, train={"epochs": 4, "patience": 10})
    a = train_member(graph, y_std, config, seed=0)
    b = train_member(graph, y_std, config, seed=0)
    assert a.history == b.history
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_early_stopping_stops_after_patience_without_improvement(problem, config_factory):
    graph, y_std, _, _ = problem
    # a learning rate so small that the validation score cannot improve by more than the 1e-4 threshold; every
    # expert is used (top_k = num_experts) so that a 1e-12 change of the zero-initialised router cannot flip routing
    config = config_factory(model={"num_experts": 2, "top_k": 2},
                            train={"epochs": 200, "patience": 3, "lr": 1e-12, "weight_decay": 0.0})
    result = train_member(graph, y_std, config, seed=0)
    assert result.best_epoch == 0
    assert len(result.history["val_score"]) == 3 + 1
    assert len(result.history["train_loss"]) == 4


def test_early_stopping_stops_before_max_epochs(problem, config_factory):
    graph, y_std, _, _ = problem
    config = config_factory(train={"epochs": 300, "patience": 2, "lr": 0.05})
    result = train_member(graph, y_std, config, seed=0)
    n = len(result.history["val_score"])
    assert n < 300
    assert n == result.best_epoch + 2 + 1
    assert not result.model.training


def test_returned_model_is_the_best_epoch(problem, config_factory):
    graph, y_std, _, _ = problem
    config = config_factory(train={"epochs": 12, "patience": 100, "lr": 0.01})
    result = train_member(graph, y_std, config, seed=0)
    hist = result.history["val_score"]
    assert len(hist) == 12
    assert hist[result.best_epoch] <= min(hist) + 1e-4
    assert _val_rmse(result.model, graph, y_std) == pytest.approx(hist[result.best_epoch], rel=1e-5)


def test_training_lowers_the_validation_error(problem, config_factory):
    graph, y_std, _, _ = problem
    config = config_factory(train={"epochs": 60, "patience": 60, "lr": 0.01}, model={"num_layers": 1})
    result = train_member(graph, y_std, config, seed=0)
    assert min(result.history["val_score"]) < result.history["val_score"][0]


# -- rule 2: a scored node never sees its own label ------------------------------------------------------------------------
def _record(monkeypatch):
    calls, scored, moran = [], [], []
    original = SpTGNN.forward

    def forward(self, data, label_value=None):
        calls.append((self.training, None if label_value is None else label_value.clone()))
        return original(self, data, label_value)

    original_objective = trainer_mod.objective

    def objective(config, epoch, y, mean, var):
        scored.append(y.detach().clone())
        return original_objective(config, epoch, y, mean, var)

    original_moran = trainer_mod.moran_penalty

    def penalty(residuals, edge_index, num_nodes=None):
        moran.append((residuals.shape[0], edge_index.clone(), num_nodes))
        return original_moran(residuals, edge_index, num_nodes)

    monkeypatch.setattr(SpTGNN, "forward", forward)
    monkeypatch.setattr(trainer_mod, "objective", objective)
    monkeypatch.setattr(trainer_mod, "moran_penalty", penalty)
    return calls, scored, moran


def test_scored_nodes_never_see_their_own_label(problem, config_factory, monkeypatch):
    graph, y_std, _, n_lab = problem
    config = config_factory(model={"num_layers": 2, "label_mask_rate": 0.5}, train={"epochs": 8, "patience": 100})
    calls, scored, moran = _record(monkeypatch)
    train_member(graph, y_std, config, seed=0)
    train_calls = [lv for training, lv in calls if training]
    eval_calls = [lv for training, lv in calls if not training]
    assert len(train_calls) == len(scored) == 8
    assert len(eval_calls) >= 8
    masks = []
    for lv, y_scored in zip(train_calls, scored):
        assert lv is not None
        assert lv.shape == y_std.shape
        assert torch.isnan(lv[n_lab:]).all(), "a query label was fed in training"
        hidden = torch.isnan(lv[:n_lab])
        assert 0 < int(hidden.sum()) < n_lab
        # the scored nodes are exactly the hidden ones: the objective's targets are their labels, in node order
        torch.testing.assert_close(y_scored, y_std[:n_lab][hidden], rtol=0, atol=0)
        # every other labelled node shows its own standardised label
        torch.testing.assert_close(lv[:n_lab][~hidden], y_std[:n_lab][~hidden], rtol=0, atol=0)
        # no scored label appears anywhere in the input
        assert not np.isin(y_scored.numpy(), lv[~torch.isnan(lv)].numpy()).any()
        masks.append(hidden)
    # a fresh random mask each epoch at about the configured rate
    assert len({tuple(m.tolist()) for m in masks}) == len(masks)
    assert 0.3 < float(torch.stack(masks).float().mean()) < 0.7
    # the Moran's I penalty sees only the scored nodes, renumbered
    for (n_res, edges, num_nodes), hidden in zip(moran, masks):
        assert n_res == num_nodes == int(hidden.sum())
        assert edges.numel() == 0 or int(edges.max()) < n_res
    # validation: every labelled label visible, query labels never
    for lv in eval_calls:
        torch.testing.assert_close(lv[:n_lab], y_std[:n_lab], rtol=0, atol=0)
        assert torch.isnan(lv[n_lab:]).all()


def test_without_label_inputs_every_labelled_node_is_scored_and_no_label_is_fed(problem, config_factory, monkeypatch):
    graph, y_std, _, n_lab = problem
    config = config_factory(model={"label_inputs": False}, train={"epochs": 3, "patience": 100})
    calls, scored, _ = _record(monkeypatch)
    train_member(graph, y_std, config, seed=0)
    assert all(lv is None for _, lv in calls)
    assert len(scored) == 3
    for y in scored:
        torch.testing.assert_close(y, y_std[:n_lab], rtol=0, atol=0)


def test_at_least_one_label_is_hidden_even_at_a_tiny_mask_rate(problem, config_factory, monkeypatch):
    graph, y_std, _, n_lab = problem
    config = config_factory(model={"label_mask_rate": 1e-6}, train={"epochs": 3, "patience": 100})
    calls, scored, _ = _record(monkeypatch)
    train_member(graph, y_std, config, seed=0)
    for training, lv in calls:
        if training:
            assert int(torch.isnan(lv[:n_lab]).sum()) == 1
    assert all(len(y) == 1 for y in scored)


# -- pieces ---------------------------------------------------------------------------------------------------------------
def test_subgraph_edges_keep_and_renumber():
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 1], [1, 2, 3, 4, 0, 4]])
    keep = torch.tensor([True, True, False, True, True])
    # kept nodes 0,1,3,4 → 0,1,2,3; edges with node 2 are dropped
    expected = torch.tensor([[0, 2, 3, 1], [1, 3, 0, 3]])
    torch.testing.assert_close(_subgraph_edges(edge_index, keep), expected)


def test_objective_kinds(config_factory):
    g = torch.Generator().manual_seed(0)
    y, mean = torch.randn(20, generator=g), torch.randn(20, generator=g)
    var = torch.rand(20, generator=g) + 0.1
    warm = config_factory(loss={"kind": "mse_warmup", "warmup_epochs": 3})
    torch.testing.assert_close(_objective(warm, 2, y, mean, var), ((y - mean) ** 2).mean())
    torch.testing.assert_close(_objective(warm, 3, y, mean, var), gaussian_nll(y, mean, var))
    beta = config_factory(loss={"kind": "beta_nll", "beta": 0.7})
    torch.testing.assert_close(_objective(beta, 0, y, mean, var), beta_nll(y, mean, var, 0.7))
    nll = config_factory(loss={"kind": "gaussian_nll"})
    torch.testing.assert_close(_objective(nll, 0, y, mean, var), gaussian_nll(y, mean, var))


def test_validation_score_kinds(config_factory):
    y, mean, var = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 1.0]), torch.tensor([1.0, 2.0, 0.5])
    assert _validation_score(config_factory(train={"monitor": "rmse"}), y, mean, var) == pytest.approx(np.sqrt((0.25 + 0 + 1) / 3))
    assert _validation_score(config_factory(train={"monitor": "nll"}), y, mean, var) == pytest.approx(float(gaussian_nll(y, mean, var)))


@pytest.mark.parametrize(("fraction", "blocks", "seed"), [(0.15, 20, 0), (0.3, 5, 1), (0.01, 3, 2)])
def test_spatial_holdout_holds_out_whole_blocks(samples, fraction, blocks, seed):
    coords = samples.metric_coords()
    held = spatial_holdout(coords, fraction, blocks, seed)
    assert held.dtype == bool
    assert held.shape == (60,)
    assert held.sum() >= max(1, fraction * 60)
    assert (~held).sum() >= 1
    labels = KMeans(n_clusters=min(blocks, 30), n_init=3, random_state=seed).fit_predict(coords)
    for b in np.unique(labels):
        assert held[labels == b].all() or not held[labels == b].any()
    np.testing.assert_array_equal(held, spatial_holdout(coords, fraction, blocks, seed))


def test_member_m_is_trained_from_seed_plus_m(samples, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    query = samples.subset(np.arange(50, 60))
    lab = samples.subset(np.arange(50))
    pair = DeepEnsemble(config_factory(train={"members": 2, "epochs": 3, "seed": 7})).fit(lab).predict(query)
    second = DeepEnsemble(config_factory(train={"members": 1, "epochs": 3, "seed": 8})).fit(lab).predict(query)
    np.testing.assert_allclose(pair.member_mean[1], second.member_mean[0], rtol=1e-6)
    assert not np.allclose(pair.member_mean[0], pair.member_mean[1])  # different seeds, different members


def test_fixed_epochs_trains_exactly_that_many_and_keeps_the_last_state(problem, config_factory):
    graph, y_std, _, _ = problem
    config = config_factory(train={"epochs": 50, "patience": 1})
    result = train_member(graph, y_std, config, seed=0, epochs=7)
    assert len(result.history["train_loss"]) == 7
    assert result.best_epoch == 6
    assert result.history["val_score"] == []


def test_refit_retrains_each_member_on_the_whole_fold_for_the_epochs_found(samples, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    config = config_factory(train={"members": 2, "epochs": 6, "patience": 2, "refit": True})
    ens = DeepEnsemble(config).fit(samples)
    full = ens.builder.build(None, config.data.target)  # every training sample labelled, no query
    y = torch.tensor(ens.target_transform.transform(samples.target()), dtype=torch.float32)
    for m, member in enumerate(ens.members):
        again = train_member(full, y, config, config.train.seed + m, epochs=ens.best_epochs[m] + 1).model
        for (name, got), want in zip(member.state_dict().items(), again.state_dict().values()):
            torch.testing.assert_close(got, want, msg=name)


def test_ema_weights_are_the_moving_average_of_the_trained_weights(problem, config_factory, monkeypatch):
    graph, y_std, _, _ = problem
    config = config_factory(train={"epochs": 3, "ema_decay": 0.5})
    snapshots = []
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        snapshots.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    result = train_member(graph, y_std, config, seed=0, epochs=3)
    # EMA with decay 0.5 seeded by the first update: a = w1, then a = 0.5 a + 0.5 w_t
    expected = [s.clone() for s in snapshots[0]]
    for snap in snapshots[1:]:
        expected = [0.5 * e + 0.5 * s for e, s in zip(expected, snap)]
    for got, want in zip(result.model.parameters(), expected):
        torch.testing.assert_close(got, want)
