"""Equal-area splines: a hand-worked profile, mass preservation, smoothness, no extrapolation, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sptgnn.data.spline import GSM_DEPTHS, EqualAreaSpline, SplineError, harmonise


def test_two_horizons_by_hand():
    """y = (10, 4) on 0-10 and 10-30 cm, λ = 0. By hand (Bishop et al. 1999, eqs. 9-12): R = 2·10 + 2·20 = 60,
    b = 6 (−10 + 4) / 60 = −0.6; γ = (−0.6/20, 0.6/40); α = (10 + 1, 4 + 6 − 2), so f = 11 − 0.03 x² on 0-10 and
    f = 8 − 0.6 (x − 10) + 0.015 (x − 10)² on 10-30. Mean over 0-5: 11 − 0.25 = 10.75; over 5-15:
    (46.25 + 33.125) / 10 = 7.9375."""
    s = EqualAreaSpline.fit([0, 10], [10, 30], [10.0, 4.0], lam=0.0)
    np.testing.assert_allclose(s.alpha, [11.0, 8.0], rtol=1e-12)
    np.testing.assert_allclose(s.curvature, [-0.03, 0.015], rtol=1e-12)
    np.testing.assert_allclose(s([0, 5, 10, 20, 30]), [11.0, 10.25, 8.0, 3.5, 2.0], rtol=1e-12)
    assert s.mean(0, 5) == pytest.approx(10.75, rel=1e-12)
    assert s.mean(5, 15) == pytest.approx(7.9375, rel=1e-12)
    np.testing.assert_allclose(s.horizon_means, [10.0, 4.0], rtol=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.1, 1.0])
def test_every_horizon_mean_is_the_spline_mean_over_it(lam):
    tops, bottoms = [0, 8, 25, 50, 80], [8, 20, 45, 80, 130]  # two gaps: 20-25 and 45-50 cm
    y = [24.0, 15.0, 9.0, 6.5, 3.0]
    s = EqualAreaSpline.fit(tops, bottoms, y, lam)
    for i, (a, b) in enumerate(zip(tops, bottoms)):
        assert s.mean(a, b) == pytest.approx(s.horizon_means[i], rel=1e-10)
    if lam == 0.0:
        np.testing.assert_allclose(s.horizon_means, y, rtol=1e-10)  # no smoothing: the measured means exactly
    else:
        assert not np.allclose(s.horizon_means, y)


def test_the_spline_and_its_slope_are_continuous_and_flat_at_the_ends():
    s = EqualAreaSpline.fit([0, 10, 30, 60], [10, 30, 55, 100], [20.0, 12.0, 7.0, 4.0], lam=0.1)
    eps = 1e-6
    for x in [10.0, 30.0, 55.0, 60.0]:  # boundaries and the ends of a gap
        below, above = s([x - eps, x + eps])
        assert above == pytest.approx(below, abs=1e-4)
        slope_left = (s(x - eps) - s(x - 2 * eps)) / eps
        slope_right = (s(x + 2 * eps) - s(x + eps)) / eps
        assert slope_right[0] == pytest.approx(slope_left[0], abs=1e-3)
    assert (s(1e-3) - s(0.0))[0] / 1e-3 == pytest.approx(0.0, abs=1e-3)
    assert (s(100.0) - s(100.0 - 1e-3))[0] / 1e-3 == pytest.approx(0.0, abs=1e-3)


def test_more_smoothing_gives_a_flatter_profile():
    tops, bottoms, y = [0, 10, 20, 40], [10, 20, 40, 70], [30.0, 10.0, 25.0, 5.0]
    roughness = []
    for lam in (0.0, 0.1, 10.0):
        x = np.linspace(0, 70, 7001)
        roughness.append(float(np.sum(np.diff(EqualAreaSpline.fit(tops, bottoms, y, lam)(x)) ** 2)))
    assert roughness[0] > roughness[1] > roughness[2]


def test_standard_intervals_below_the_profile_are_not_extrapolated():
    s = EqualAreaSpline.fit([0, 15], [15, 45], [12.0, 6.0])
    means = s.interval_means(GSM_DEPTHS)
    assert np.isfinite(means[:3]).all()  # 0-5, 5-15, 15-30 within 0-45 cm
    assert np.isnan(means[3:]).all()  # 30-60 reaches below 45 cm
    single = EqualAreaSpline.fit([0], [30], [8.0])
    assert single.mean(0, 30) == 8.0
    assert single.mean(5, 15) == 8.0


@pytest.mark.parametrize(("tops", "bottoms", "message"), [
    ([0, 10], [15, 30], "horizons 0-15 and 10-30 cm overlap"),
    ([0, 10], [10, 10], "horizon 10-10 cm: its bottom must lie below its top"),
    ([], [], "one top, bottom and value per horizon"),
])
def test_bad_horizons_are_named(tops, bottoms, message):
    with pytest.raises(SplineError, match=message):
        EqualAreaSpline.fit(tops, bottoms, np.ones(len(tops)))


def test_harmonise_gives_one_row_per_site_and_names_a_bad_profile():
    frame = pd.DataFrame({"site": ["a", "a", "b", "b", "b"], "top": [0, 10, 0, 20, 50],
                          "bottom": [10, 30, 20, 50, 120], "soc": [10.0, 4.0, 20.0, np.nan, 5.0]})
    out = harmonise(frame, "site", "top", "bottom", "soc", [(0, 5), (5, 15), (30, 60)], lam=0.0)
    assert list(out.index) == ["a", "b"]
    assert list(out.columns) == ["soc_0_5cm", "soc_5_15cm", "soc_30_60cm"]
    assert out.loc["a", "soc_0_5cm"] == pytest.approx(10.75, rel=1e-12)  # the hand-worked profile above
    assert np.isnan(out.loc["a", "soc_30_60cm"])
    spline_b = EqualAreaSpline.fit([0, 50], [20, 120], [20.0, 5.0], 0.0)  # b's horizon without a value is left out
    assert out.loc["b", "soc_30_60cm"] == pytest.approx(spline_b.mean(30, 60), rel=1e-12)
    bad = frame.assign(bottom=[10, 30, 60, 50, 120])
    with pytest.raises(SplineError, match="site b: horizons 0-60 and 50-120 cm overlap"):
        harmonise(bad, "site", "top", "bottom", "soc")


@pytest.mark.parametrize("lam", [0.0, 0.1, 1.0])
def test_the_spline_equals_mpspline_at_every_centimetre(lam):
    """mpspline (GPL-3, a dev-only reference, never imported by sptgnn) gives the spline at each whole centimetre."""
    mpspline = pytest.importorskip("mpspline.algorithm")
    tops, bottoms, y = [0, 8, 25, 50, 80], [8, 20, 45, 80, 130], [24.0, 15.0, 9.0, 6.5, 3.0]
    reference = mpspline.spline_one(pd.DataFrame({"UD": tops, "LD": bottoms, "soc": y}), "soc", lam=lam)["est_1cm"]
    depths = np.arange(130.0)
    np.testing.assert_allclose(EqualAreaSpline.fit(tops, bottoms, y, lam)(depths), reference[:130], atol=1e-6)


def test_harmonised_means_are_not_negative_unless_asked():
    frame = pd.DataFrame({"site": ["a"] * 3, "top": [0, 5, 10], "bottom": [5, 10, 60], "soc": [60.0, 1.0, 0.2]})
    raw = harmonise(frame, "site", "top", "bottom", "soc", [(10, 20), (20, 40)], lam=0.0, lower=None)
    assert raw.to_numpy().min() < 0  # the spline dips below zero under the rich topsoil
    clipped = harmonise(frame, "site", "top", "bottom", "soc", [(10, 20), (20, 40)], lam=0.0)
    np.testing.assert_array_equal(clipped.to_numpy(), np.maximum(raw.to_numpy(), 0.0))


def test_the_harmonise_command_writes_standard_depths_and_refuses_bad_input(tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    pd.DataFrame({"site": ["a", "a", "b"], "top": [0, 10, 0], "bottom": [10, 30, 50],
                  "soc": [10.0, 4.0, 7.0]}).to_csv(tmp_path / "h.csv", index=False)
    args = ["harmonise", str(tmp_path / "h.csv"), "--site", "site", "--top", "top", "--bottom", "bottom",
            "--value", "soc", "--lambda", "0", "--depths", "0-5,5-15,30-60"]
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "std.csv")])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(tmp_path / "std.csv", index_col="site")
    assert out.loc["a", "soc_0_5cm"] == pytest.approx(10.75, rel=1e-12)  # the hand-worked profile
    assert out.loc["b", "soc_5_15cm"] == pytest.approx(7.0, rel=1e-12)
    assert np.isnan(out.loc["a", "soc_30_60cm"])
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "std.csv")])
    assert res.exit_code == 2
    assert "already exists" in res.output
    res = CliRunner().invoke(app, args[:-1] + ["0-5,9-3", "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert not (tmp_path / "x.csv").exists()
