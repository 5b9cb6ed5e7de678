"""Profile layers are scored by standard depth interval, beside the pooled scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import r2_score

from sptgnn import cross_validate
from sptgnn.models.baselines import TreeBaseline
from sptgnn.splits import BlockKFold


def test_each_layer_is_scored_in_the_interval_of_its_mid_depth(samples_factory):
    base = samples_factory(90, seed=2, folds=None)
    frame = base.frame.copy()
    frame["site"] = [f"p{i // 3}" for i in range(90)]
    frame["top"], frame["bottom"] = np.tile([0.0, 10.0, 150.0], 30), np.tile([8.0, 30.0, 300.0], 30)
    samples = replace(base, frame=frame, site="site", depth=("top", "bottom"))
    result = cross_validate({"rf": TreeBaseline("random_forest", trees=20)}, samples, BlockKFold(3, block_size_km=0.5),
                            moran_permutations=0)
    scores = result.metrics["rf"]["per_depth"]
    assert list(scores) == ["0-5", "15-30", ">200"]  # mid depths 4, 20 and 225 cm
    assert [scores[k]["n"] for k in scores] == [30, 30, 30]
    p = result.predictions.set_index("sample_id").loc[samples.sample_ids]
    deep = (frame["top"] == 150.0).to_numpy()
    assert scores[">200"]["r2"] == pytest.approx(r2_score(p["y_true"][deep], p["mean"][deep]), rel=1e-12)
    assert "per_depth" not in cross_validate({"rf": TreeBaseline("random_forest", trees=20)}, base,
                                             BlockKFold(3, block_size_km=0.5), moran_permutations=0).metrics["rf"]
