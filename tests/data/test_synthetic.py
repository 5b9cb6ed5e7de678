"""Synthetic samples for benchmarks: shape, determinism, structure and errors."""

from __future__ import annotations

import numpy as np
import pytest

from sptgnn.data.synthetic import ENVIRONMENT, IMAGERY, synthetic_samples


def test_synthetic_samples_are_seeded_valid_samples():
    a, b, c = synthetic_samples(500, seed=1), synthetic_samples(500, seed=1), synthetic_samples(500, seed=2)
    assert len(a) == 500
    assert a.feature_groups == {"imagery": IMAGERY, "environment": ENVIRONMENT}
    np.testing.assert_array_equal(a.target(), b.target())
    assert not np.allclose(a.target(), c.target())
    assert np.all(a.target() > 0)
    assert a.crs.to_epsg() == 32633
    xy = a.xy()
    assert np.ptp(xy[:, 0]) <= 100_000
    assert np.ptp(xy[:, 1]) <= 100_000
    # SOC carries covariate signal (nir enters its mean): a positive correlation far above noise
    assert np.corrcoef(a.frame["nir"], np.log(a.target()))[0, 1] > 0.2


@pytest.mark.parametrize("n, extent", [(0, 1.0), (10, 0.0)])
def test_synthetic_samples_reject_bad_sizes(n, extent):
    with pytest.raises(ValueError, match="synthetic_samples"):
        synthetic_samples(n, extent_m=extent)
