"""Losses against references: esda's Moran's I, torch's Gaussian NLL, hand-derived β-NLL gradients, Switch balance."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from esda.moran import Moran
from libpysal.weights import W
from scipy.spatial.distance import cdist

from sptgnn.losses import beta_nll, gaussian_nll, moe_balance_loss, moran_penalty, morans_i


def _esda_I(values: np.ndarray, neighbours: dict[int, list[int]]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands
        w = W(neighbours)
        w.transform = "r"
        return float(Moran(values, w, permutations=0).I)


def _edge_index(neighbours: dict[int, list[int]]) -> torch.Tensor:
    """Row ``i`` of W holds neighbour ``j``: edge ``j → i``."""
    pairs = [(j, i) for i, js in neighbours.items() for j in js]
    return torch.tensor(pairs, dtype=torch.long).T.reshape(2, -1)


def _knn_neighbours(coords: np.ndarray, k: int) -> dict[int, list[int]]:
    d = cdist(coords, coords)
    np.fill_diagonal(d, np.inf)
    return {i: np.argsort(d[i])[:k].tolist() for i in range(len(coords))}


def test_morans_i_equals_esda_on_a_symmetric_lattice():
    # rook contiguity on a 6 x 5 grid: symmetric, but row-standardisation makes W asymmetric
    rows, cols = 6, 5
    nb = {}
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            nb[i] = [(r + dr) * cols + (c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                     if 0 <= r + dr < rows and 0 <= c + dc < cols]
    rng = np.random.default_rng(0)
    values = rng.normal(size=rows * cols) + np.repeat(np.arange(rows), cols) * 0.5
    got = morans_i(torch.tensor(values, dtype=torch.float64), _edge_index(nb))
    assert float(got) == pytest.approx(_esda_I(values, nb), abs=1e-6)


@pytest.mark.parametrize(("n", "k", "seed"), [(40, 4, 0), (25, 7, 1), (60, 1, 2)])
def test_morans_i_equals_esda_with_knn_neighbours(n, k, seed):
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, 100, (n, 2))
    values = np.sin(coords[:, 0] / 20) + rng.normal(0, 0.3, n)
    nb = _knn_neighbours(coords, k)
    # kNN neighbours are asymmetric
    assert any(i not in nb[j] for i in nb for j in nb[i])
    expected = _esda_I(values, nb)
    got = morans_i(torch.tensor(values, dtype=torch.float64), _edge_index(nb))
    assert float(got) == pytest.approx(expected, abs=1e-6)
    got32 = morans_i(torch.tensor(values, dtype=torch.float32), _edge_index(nb))
    assert float(got32) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_morans_i_equals_esda_with_asymmetric_neighbours_of_varying_degree(seed):
    # each node's row holds 1 to 6 random neighbours: asymmetric and of unequal in- and out-degrees, so a weight
    # taken from the wrong end of an edge would change I
    rng = np.random.default_rng(seed)
    n = 30
    nb = {i: sorted(rng.choice([j for j in range(n) if j != i], size=rng.integers(1, 7), replace=False).tolist())
          for i in range(n)}
    values = rng.normal(size=n) + np.arange(n) / 10
    got = morans_i(torch.tensor(values, dtype=torch.float64), _edge_index(nb))
    assert float(got) == pytest.approx(_esda_I(values, nb), abs=1e-6)


def test_morans_i_equals_esda_with_islands():
    rng = np.random.default_rng(3)
    values = rng.normal(size=12)
    nb = {i: [(i + 1) % 10, (i + 3) % 10] for i in range(10)}
    nb[10], nb[11] = [], []
    got = morans_i(torch.tensor(values, dtype=torch.float64), _edge_index({i: v for i, v in nb.items() if v}), num_nodes=12)
    assert float(got) == pytest.approx(_esda_I(values, nb), abs=1e-6)


def test_morans_i_of_a_smooth_field_is_positive_and_of_a_checkerboard_negative():
    nb = {i: [j for j in (i - 1, i + 1) if 0 <= j < 20] for i in range(20)}
    ei = _edge_index(nb)
    smooth = torch.linspace(0, 1, 20, dtype=torch.float64)
    checker = torch.tensor([(-1.0) ** i for i in range(20)], dtype=torch.float64)
    assert float(morans_i(smooth, ei)) > 0.5
    assert float(morans_i(checker, ei)) == pytest.approx(-1.0, abs=1e-12)


def test_morans_i_degenerate_cases():
    ei = torch.tensor([[1, 0], [0, 1]])
    assert float(morans_i(torch.ones(2), ei)) == 0.0
    assert float(morans_i(torch.tensor([1.0, 2.0]), torch.empty(2, 0, dtype=torch.long))) == 0.0


def test_morans_i_is_differentiable():
    rng = np.random.default_rng(4)
    nb = _knn_neighbours(rng.uniform(size=(8, 2)), 3)
    ei = _edge_index(nb)
    x = torch.tensor(rng.normal(size=8), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: morans_i(v, ei), (x,))


def test_moran_penalty_is_the_square():
    rng = np.random.default_rng(5)
    nb = _knn_neighbours(rng.uniform(size=(15, 2)), 3)
    v = torch.tensor(rng.normal(size=15), dtype=torch.float64)
    assert float(moran_penalty(v, _edge_index(nb))) == pytest.approx(_esda_I(v.numpy(), nb) ** 2, abs=1e-9)


# -- Gaussian and β-NLL ------------------------------------------------------------------------------------------------
@pytest.fixture
def gaussian():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, generator=g, dtype=torch.float64)
    mean = torch.randn(50, generator=g, dtype=torch.float64)
    var = torch.rand(50, generator=g, dtype=torch.float64) * 2 + 0.05
    return y, mean, var


def test_gaussian_nll_equals_torch(gaussian):
    y, mean, var = gaussian
    expected = F.gaussian_nll_loss(mean, y, var, full=True, reduction="mean")
    torch.testing.assert_close(gaussian_nll(y, mean, var), expected, rtol=1e-12, atol=1e-12)


def test_gaussian_nll_hand_value():
    # y = 1, mean = 0, var = 4: 0.5 * (log(8π) + 1/4)
    got = gaussian_nll(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([4.0]))
    assert float(got) == pytest.approx(0.5 * (math.log(8 * math.pi) + 0.25), rel=1e-6)


def test_beta_nll_with_beta_zero_is_gaussian_nll(gaussian):
    y, mean, var = gaussian
    torch.testing.assert_close(beta_nll(y, mean, var, beta=0.0), gaussian_nll(y, mean, var), rtol=1e-12, atol=1e-12)


def test_beta_nll_value_weights_each_term_by_var_to_the_beta(gaussian):
    y, mean, var = gaussian
    nll = 0.5 * (np.log(2 * np.pi * var.numpy()) + (y - mean).numpy() ** 2 / var.numpy())
    expected = np.mean(nll * var.numpy() ** 0.5)
    assert float(beta_nll(y, mean, var, beta=0.5)) == pytest.approx(expected, rel=1e-12)


def test_beta_nll_beta_one_gives_the_mean_the_mse_gradient(gaussian):
    y, mean, var = gaussian
    mu = mean.clone().requires_grad_(True)
    beta_nll(y, mu, var, beta=1.0).backward()
    # d/dμ of mean_i[ 0.5 (y_i - μ_i)² / σ_i² · σ_i² ] = -(y_i - μ_i) / n, the gradient of 0.5 · MSE
    torch.testing.assert_close(mu.grad, -(y - mean) / len(y), rtol=1e-12, atol=1e-12)
    mu2 = mean.clone().requires_grad_(True)
    (0.5 * ((y - mu2) ** 2).mean()).backward()
    torch.testing.assert_close(mu.grad, mu2.grad, rtol=1e-12, atol=1e-12)


def test_beta_nll_variance_gradient_is_scaled_but_not_differentiated_through_the_weight(gaussian):
    y, mean, var = gaussian
    v = var.clone().requires_grad_(True)
    beta = 0.5
    beta_nll(y, mean, v, beta).backward()
    # d/dσ² of 0.5 [log 2πσ² + r²/σ²] = 0.5 (1/σ² - r²/σ⁴), times the constant weight (σ²)^β / n
    r2 = (y - mean) ** 2
    expected = 0.5 * (1 / var - r2 / var**2) * var**beta / len(y)
    torch.testing.assert_close(v.grad, expected, rtol=1e-12, atol=1e-12)


# -- MoE balance -------------------------------------------------------------------------------------------------------
def test_balance_loss_is_one_for_uniform_routing():
    E, n = 4, 12
    gates = torch.zeros(n, E)
    gates[torch.arange(n), torch.arange(n) % E] = 1.0
    probs = torch.full((n, E), 1 / E)
    assert float(moe_balance_loss(gates, probs)) == pytest.approx(1.0, abs=1e-7)


def test_balance_loss_is_one_for_uniform_top2_routing():
    E, n = 4, 8
    gates = torch.zeros(n, E)
    for i in range(n):
        gates[i, i % E] = 0.6
        gates[i, (i + 1) % E] = 0.4
    probs = torch.full((n, E), 1 / E)
    assert float(moe_balance_loss(gates, probs)) == pytest.approx(1.0, abs=1e-7)


def test_balance_loss_grows_when_routing_collapses():
    E, n = 4, 10
    gates = torch.zeros(n, E)
    gates[:, 0] = 1.0
    probs = torch.tensor([[0.85, 0.05, 0.05, 0.05]]).repeat(n, 1)
    got = float(moe_balance_loss(gates, probs))
    # f = (1, 0, 0, 0), P = (0.85, ...): E · 1 · 0.85
    assert got == pytest.approx(E * 0.85, rel=1e-6)
    assert got > 1.0
    uniform_gates = torch.zeros(n, E)
    uniform_gates[torch.arange(n), torch.arange(n) % E] = 1.0
    assert float(moe_balance_loss(uniform_gates, torch.full((n, E), 0.25))) < got


def test_balance_loss_hand_value_and_gradient_to_probs():
    gates = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.4, 0.4]], requires_grad=True)
    loss = moe_balance_loss(gates, probs)
    f = np.array([1, 3, 1]) / 5
    p = probs.detach().numpy().mean(0)
    assert float(loss.detach()) == pytest.approx(3 * float(f @ p), rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(probs.grad.numpy(), np.tile(3 * f / 3, (3, 1)), rtol=1e-6)
