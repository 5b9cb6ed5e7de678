"""Stocks: a hand-computed pixel, t CO₂e, bad inputs, and Monte Carlo moments against the delta method and the exact
moments of a product of independent variables."""

from __future__ import annotations

import numpy as np
import pytest

from sptgnn.accounting import Property, co2e_t, soc_stock_t_ha, stock_draws, stock_moments_delta


def test_one_pixel_by_hand():
    # 12.5 g/kg × 1.35 g/cm³ × 30 cm × (1 − 0.1) × 0.1: 0.0125 t/t × 1.35 t/m³ × 0.30 m × 0.9 × 10⁴ m²/ha
    by_hand = 0.0125 * 1.35 * 0.30 * 0.9 * 10_000
    assert soc_stock_t_ha(12.5, 1.35, 30.0, 0.1) == pytest.approx(by_hand, abs=1e-9)
    assert co2e_t(by_hand) == pytest.approx(by_hand * 44 / 12, abs=1e-9)


def test_bad_layer_and_coarse_fraction_are_refused():
    with pytest.raises(ValueError, match="thickness must be positive"):
        soc_stock_t_ha(10.0, 1.3, 0.0)
    with pytest.raises(ValueError, match="give 0.15 for 15 %"):
        soc_stock_t_ha(10.0, 1.3, 30.0, 15.0)


def test_monte_carlo_moments_match_the_delta_method_and_the_exact_product():
    rng = np.random.default_rng(0)
    R = 400_000
    soc = 20.0 + 1.0 * rng.standard_normal((R, 1))  # CV 5 %
    draws = stock_draws(soc, Property(1.4, 0.05), 30.0, Property(0.1, 0.0), rng)
    mean, sd = stock_moments_delta(20.0, 1.0, 1.4, 0.05, 30.0, 0.1)
    assert draws.mean() == pytest.approx(mean, rel=2e-3)
    assert draws.std() == pytest.approx(sd, rel=1e-2)
    c = 0.1 * 30.0 * 0.9  # exact sd of a product of independent variables: c sqrt(μs²σb² + μb²σs² + σs²σb²)
    assert draws.std() == pytest.approx(c * np.sqrt(20**2 * 0.05**2 + 1.4**2 * 1.0**2 + 1.0 * 0.05**2), rel=5e-3)


def test_joint_draws_carry_their_correlation():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200_000, 1))
    soc, bd = 20 + 2 * z, 1.4 - 0.1 * z  # organic soils are lighter: negatively correlated
    joint = stock_draws(soc, bd, 30.0)
    independent = stock_draws(soc, Property(1.4, 0.1), 30.0, rng=rng)
    assert joint.std() < 0.8 * independent.std()
