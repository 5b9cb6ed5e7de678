"""Dirichlet prior-aware gating: concentrations, posterior-mean top-k gates, the KL to the prior against a hand
computation, and training through the whole model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import digamma, gammaln

from sptgnn.nn.moe import SparseMoE


def dirichlet_kl(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """KL(Dir(α) ‖ Dir(β)) per row, closed form (e.g. Penny 2001, "KL-divergences of Normal, Gamma, Dirichlet and
    Wishart densities")."""
    a0 = alpha.sum(-1)
    return (gammaln(a0) - gammaln(alpha).sum(-1) - gammaln(beta.sum(-1)) + gammaln(beta).sum(-1)
            + ((alpha - beta) * (digamma(alpha) - digamma(a0)[:, None])).sum(-1))


@pytest.fixture
def moe():
    torch.manual_seed(0)
    m = SparseMoE(6, 5, num_experts=4, top_k=2, noise=1.0, gating="dirichlet", prior=0.7)
    with torch.no_grad():
        m.router.weight.normal_(0, 1.0)
    return m


@pytest.fixture
def x():
    return torch.randn(40, 6, generator=torch.Generator().manual_seed(3))


def test_eval_gates_are_the_top_k_posterior_mean(moe, x):
    moe.eval()
    gates, mean = moe.gates(x)
    alpha = (0.7 + torch.nn.functional.softplus(x @ moe.router.weight.T)).detach().numpy()
    post = alpha / alpha.sum(1, keepdims=True)
    np.testing.assert_allclose(mean.detach().numpy(), post, rtol=1e-6)
    g = gates.detach().numpy()
    assert ((g > 0).sum(1) == 2).all()
    np.testing.assert_allclose(g.sum(1), 1.0, rtol=1e-6)
    top = np.argsort(-post, axis=1)[:, :2]
    rows = np.arange(len(post))[:, None]
    np.testing.assert_allclose(g[rows, top], post[rows, top] / post[rows, top].sum(1, keepdims=True), rtol=1e-6)


def test_kl_to_the_prior_matches_the_closed_form(moe, x):
    moe.eval()
    moe(x)
    alpha = moe.concentrations(x).detach().numpy().astype(np.float64)
    expected = dirichlet_kl(alpha, np.full_like(alpha, 0.7)).mean()
    assert float(moe.last_kl.detach()) == pytest.approx(expected, rel=1e-4)
    # no evidence (router weights 0 and softplus(0) → α₀ + log 2): a small KL, positive
    with torch.no_grad():
        moe.router.weight.zero_()
    moe(x)
    assert 0 < float(moe.last_kl.detach()) < float(dirichlet_kl(np.full((1, 4), 0.7 + np.log(2)), np.full((1, 4), 0.7))[0]) + 1e-6


def test_training_draws_gates_and_the_kl_has_gradients(moe, x):
    moe.train()
    out, balance = moe(x)
    g1 = moe.last_gates.clone()
    moe(x)
    assert not torch.equal(g1, moe.last_gates)  # a fresh Dirichlet draw each pass
    (out.square().mean() + balance + moe.last_kl).backward()
    assert moe.router.weight.grad is not None
    assert moe.router.weight.grad.abs().sum() > 0


def test_softmax_gating_has_no_kl(x):
    m = SparseMoE(6, 5, 4, 2)
    m(x)
    assert float(m.last_kl) == 0.0
    with pytest.raises(ValueError, match="gating"):
        SparseMoE(6, 5, 4, 2, gating="softmax")


def test_a_member_trains_with_dirichlet_gating(config_factory, samples_factory):
    from sptgnn.estimator.regressor import SpTGNNRegressor

    s = samples_factory(n=50, seed=2)
    cfg = config_factory(model={"gating": "dirichlet"}, train={"members": 1, "epochs": 3})
    est = SpTGNNRegressor.from_config(cfg, area_of_applicability=False).fit(s.subset(np.arange(40)))
    assert est.gating == "dirichlet"
    f = est.predict_dist(s.subset(np.arange(40, 50)))
    assert np.isfinite(f.mean).all()
    gates = est.diagnostics(s.subset(np.arange(40, 50)))["gates"]
    assert ((gates > 0).sum(1) == 2).all()
