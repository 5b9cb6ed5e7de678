"""The one thread policy (sptgnn.threads): precedence, default by graph size, applied to torch and the trees."""

from __future__ import annotations

import json

import pytest
import torch

from sptgnn import threads
from sptgnn.config import ConfigError
from sptgnn.models.baselines import make_regressor


@pytest.fixture(autouse=True)
def restore(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("SPTGNN_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)
    threads.apply_threads({"threads": 1, "source": "test"})


def test_precedence_config_then_environment_then_default(monkeypatch):
    assert threads.resolve_threads(None, 250) == {"threads": 1, "source": "default (< 50000 nodes)"}
    big = threads.resolve_threads(None, 2 * threads.LARGE_GRAPH)
    assert big["threads"] == threads.available_cores()
    assert big["source"].startswith("default (≥")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve_threads(None, 250) == {"threads": 3, "source": "$OMP_NUM_THREADS"}
    monkeypatch.setenv("SPTGNN_THREADS", "2")
    assert threads.resolve_threads(None, 250)["source"] == "$SPTGNN_THREADS"
    assert threads.resolve_threads(4, 250) == {"threads": 4, "source": "train.threads"}


@pytest.mark.parametrize("value", ["two", "0"])
def test_a_bad_environment_value_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("SPTGNN_THREADS", value)
    with pytest.raises(ConfigError, match="SPTGNN_THREADS"):
        threads.resolve_threads()


def test_applied_policy_sets_torch_and_the_trees():
    threads.apply_threads({"threads": 2, "source": "test"})
    assert torch.get_num_threads() == 2
    assert make_regressor("random_forest").n_jobs == 2
    assert make_regressor("xgboost").n_jobs == 2
    threads.apply_threads({"threads": 1, "source": "test"})
    assert torch.get_num_threads() == 1
    assert make_regressor("xgboost").n_jobs == 1


def test_evaluate_states_the_policy_in_metrics(samples_factory, config_factory, tmp_path):
    from sptgnn.evaluate.runfolder import evaluate_to_folder

    data = samples_factory(n=30, seed=2)
    cfg = config_factory(evaluate={"baselines": [], "split": "shipped"}, train={"members": 1, "epochs": 2})
    evaluate_to_folder(cfg, data, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["threads"] == {"threads": 1, "source": "default (< 50000 nodes)"}
    assert metrics["torch_threads"] == 1
