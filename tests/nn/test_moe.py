"""Sparse top-k MoE: gates, determinism in eval mode, the sparse dispatch against a dense reference, gradients."""

from __future__ import annotations

import pytest
import torch

from sptgnn.losses import moe_balance_loss
from sptgnn.nn.moe import SparseMoE


def _moe(in_dim=6, out_dim=5, experts=4, top_k=2, noise=1.0, seed=0, random_router=True):
    torch.manual_seed(seed)
    moe = SparseMoE(in_dim, out_dim, experts, top_k, noise=noise, dropout=0.0)
    if random_router:
        with torch.no_grad():
            moe.router.weight.normal_(0, 1.0)
            moe.noise_proj.weight.normal_(0, 0.5)
    return moe


@pytest.fixture
def x():
    return torch.randn(32, 6, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("top_k", [1, 2, 3, 4])
@pytest.mark.parametrize("training", [True, False])
def test_gates_rows_sum_to_one_with_exactly_top_k_nonzero(x, top_k, training):
    moe = _moe(top_k=top_k)
    moe.train(training)
    gates, probs = moe.gates(x)
    assert gates.shape == probs.shape == (32, 4)
    torch.testing.assert_close(gates.sum(1), torch.ones(32))
    assert ((gates > 0).sum(1) == top_k).all()
    assert (gates >= 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(32))


def test_gates_at_initialisation_are_uniform_over_the_chosen_experts(x):
    moe = _moe(top_k=2, random_router=False).eval()
    gates, probs = moe.gates(x)
    assert ((gates > 0).sum(1) == 2).all()
    torch.testing.assert_close(gates[gates > 0], torch.full((64,), 0.5))
    torch.testing.assert_close(probs, torch.full((32, 4), 0.25))


def test_eval_gates_are_the_clean_top_k_softmax(x):
    moe = _moe(top_k=2).eval()
    gates, probs = moe.gates(x)
    logits = x @ moe.router.weight.T
    top_val, top_idx = logits.topk(2, dim=1)
    expected = torch.zeros_like(logits)
    expected.scatter_(1, top_idx, torch.softmax(top_val, dim=1))
    torch.testing.assert_close(gates, expected)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1))


def test_no_noise_in_eval_mode(x):
    moe = _moe(noise=5.0).eval()
    torch.manual_seed(10)
    out1, bal1 = moe(x)
    g1 = moe.last_gates.clone()
    torch.manual_seed(99)
    out2, bal2 = moe(x)
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    torch.testing.assert_close(g1, moe.last_gates, rtol=0, atol=0)
    torch.testing.assert_close(bal1, bal2, rtol=0, atol=0)


def test_noise_in_training_mode_changes_routing(x):
    moe = _moe(noise=5.0).train()
    torch.manual_seed(0)
    g1, _ = moe.gates(x)
    torch.manual_seed(1)
    g2, _ = moe.gates(x)
    assert not torch.equal(g1, g2)
    # without noise training is deterministic too
    quiet = _moe(noise=0.0).train()
    torch.testing.assert_close(quiet.gates(x)[0], quiet.gates(x)[0], rtol=0, atol=0)


def test_output_equals_dense_mixture_of_experts(x):
    moe = _moe(top_k=2).eval()
    out, balance = moe(x)
    gates, probs = moe.gates(x)
    dense = sum(gates[:, e:e + 1] * moe.experts[e](x) for e in range(4))
    torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(balance, moe_balance_loss(gates, probs))
    torch.testing.assert_close(moe.last_gates, gates)
    assert not moe.last_gates.requires_grad
    assert out.shape == (32, 5)


def test_inference_without_grad_equals_the_routed_output(x):
    moe = _moe(top_k=2).eval()
    routed, balance = moe(x)  # grad enabled: the routed (gather/scatter) path
    with torch.no_grad():
        dense, dense_balance = moe(x)  # inference: every expert on every node, weighted by its gate
    torch.testing.assert_close(dense, routed.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dense_balance, balance.detach())


def test_experts_not_chosen_get_no_input(x):
    moe = _moe(experts=4, top_k=1).eval()
    gates, _ = moe.gates(x)
    unused = [e for e in range(4) if not (gates[:, e] > 0).any()]
    calls = {e: 0 for e in range(4)}
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda m, i, o, e=e: calls.__setitem__(e, calls[e] + len(i[0])))
    moe(x)
    for e in range(4):
        assert calls[e] == int((gates[:, e] > 0).sum())
    for e in unused:
        assert calls[e] == 0


def test_gradients_flow_to_router_and_noise_weights(x):
    moe = _moe(top_k=2).train()
    torch.manual_seed(0)
    out, balance = moe(x)
    (out.pow(2).sum() + balance).backward()
    assert moe.router.weight.grad is not None
    assert moe.router.weight.grad.abs().sum() > 0
    assert moe.noise_proj.weight.grad is not None
    assert moe.noise_proj.weight.grad.abs().sum() > 0
    used = [e for e in range(4) if (moe.last_gates[:, e] > 0).any()]
    for e in used:
        assert moe.experts[e][0].weight.grad.abs().sum() > 0


def test_gradients_reach_the_router_from_its_zero_initialisation(x):
    moe = _moe(top_k=2, random_router=False).eval()
    out, balance = moe(x)
    out.sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("top_k", [0, 5])
def test_invalid_top_k(top_k):
    with pytest.raises(ValueError, match="top_k"):
        SparseMoE(4, 4, 4, top_k)
