"""The run folder: save/load round trip, atomic writes, and a clear error for every broken folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sptgnn.estimator.manifest import write_manifest
from sptgnn.estimator.persistence import RUN_FORMAT
from sptgnn.estimator.run import Run, RunError
from sptgnn.train.ensemble import DeepEnsemble

from helpers import assert_same_prediction, split_every_fourth


@pytest.fixture(scope="module")
def data(samples_factory):
    return split_every_fourth(samples_factory(n=48, seed=11))


@pytest.fixture(scope="module")
def fitted(data, config_factory):
    lab, _ = data
    return DeepEnsemble(config_factory(model={"num_layers": 2})).fit(lab)


@pytest.fixture(scope="module")
def saved_run(fitted, tmp_path_factory):
    return Run(fitted).save(tmp_path_factory.mktemp("runs") / "run").path


# -- run directory ------------------------------------------------------------------------------------------------------
def test_save_then_load_gives_identical_predictions(fitted, saved_run, data):
    _, query = data
    assert sorted(p.name for p in saved_run.iterdir()) == ["config.yaml", "ensemble.pt", "labelled.gpkg", "manifest.json", "run.json"]
    loaded = Run.load(saved_run).ensemble
    assert loaded.config == fitted.config
    assert loaded.best_epochs == fitted.best_epochs
    assert loaded.builder.relations == fitted.builder.relations
    assert loaded.builder.distance_scale == fitted.builder.distance_scale
    assert loaded.target_transform == fitted.target_transform
    np.testing.assert_array_equal(loaded.builder.labelled.xy(), fitted.builder.labelled.xy())
    assert_same_prediction(fitted.predict(query), loaded.predict(query))
    np.testing.assert_array_equal(fitted.gates(query), loaded.gates(query))


@pytest.mark.parametrize("variant", ["no_dates_no_elevation", "no_label_inputs"])
def test_save_load_variants(variant, samples_factory, config_factory, tmp_path):
    if variant == "no_dates_no_elevation":
        samples = samples_factory(n=36, seed=4, with_date=False, with_elevation=False)
        cfg = config_factory(graph={"relations": ["spatial", "spectral"]}, data={"target_transform": "none"})
    else:
        samples = samples_factory(n=36, seed=4)
        cfg = config_factory(model={"label_inputs": False}, train={"members": 1})
    lab, query = split_every_fourth(samples)
    ens = DeepEnsemble(cfg).fit(lab)
    loaded = Run.load(Run(ens).save(tmp_path / "run").path).ensemble
    assert_same_prediction(ens.predict(query), loaded.predict(query))


def test_save_to_an_existing_path_raises(fitted, saved_run, tmp_path):
    before = sorted(p.name for p in saved_run.iterdir())
    with pytest.raises(RunError, match="already exists"):
        Run(fitted).save(saved_run)
    assert sorted(p.name for p in saved_run.iterdir()) == before
    existing = tmp_path / "taken"
    existing.mkdir()
    with pytest.raises(RunError, match="already exists"):
        Run(fitted).save(existing)
    assert list(existing.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary folder left behind


def test_save_overwrite_replaces(fitted, tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    Run(fitted).save(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "ensemble.pt", "labelled.gpkg", "manifest.json", "run.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_save_into_missing_parent_raises(fitted, tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        Run(fitted).save(tmp_path / "nope" / "run")
    assert list(tmp_path.iterdir()) == []


def _copy(saved_run, tmp_path):
    return shutil.copytree(saved_run, tmp_path / "copy")


def _reseal(run):
    """Rewrite the manifest after an edit: a consistent folder whose content is wrong, to reach the checks behind the
    manifest's."""
    write_manifest(run, {"format": RUN_FORMAT})
    return run


@pytest.mark.parametrize("missing", ["config.yaml", "ensemble.pt", "labelled.gpkg"])
def test_load_with_a_missing_file(saved_run, tmp_path, missing):
    run = _copy(saved_run, tmp_path)
    (run / missing).unlink()
    with pytest.raises(RunError) as info:
        Run.load(run).ensemble
    msg = str(info.value)
    assert missing in msg
    assert "sptgnn train" in msg


def test_load_missing_folder(tmp_path):
    with pytest.raises(RunError, match="run directory not found"):
        Run.load(tmp_path / "nothing")


def test_load_corrupt_checkpoint(saved_run, tmp_path):
    run = _copy(saved_run, tmp_path)
    (run / "ensemble.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(RunError, match="corrupt"):
        Run.load(run).ensemble


def test_load_truncated_checkpoint(saved_run, tmp_path):
    run = _copy(saved_run, tmp_path)
    data = (run / "ensemble.pt").read_bytes()
    (run / "ensemble.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="corrupt"):
        Run.load(run).ensemble


@pytest.mark.parametrize(("state", "shown"), [({"format": 99}, "format 99"), ([1, 2, 3], "format ?"), ({}, "format None")])
def test_load_wrong_format(saved_run, tmp_path, state, shown):
    run = _copy(saved_run, tmp_path)
    torch.save(state, run / "ensemble.pt")
    _reseal(run)
    with pytest.raises(RunError) as info:
        Run.load(run).ensemble
    assert shown in str(info.value)
    assert "retrain" in str(info.value)


def test_load_invalid_config(saved_run, tmp_path):
    run = _copy(saved_run, tmp_path)
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["hiden"] = raw["model"].pop("hidden")
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    _reseal(run)
    with pytest.raises(RunError, match="did you mean 'hidden'"):
        Run.load(run).ensemble


def test_load_weights_that_do_not_match_the_config(saved_run, tmp_path):
    run = _copy(saved_run, tmp_path)
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["hidden"] = 32
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(RunError, match="config.yaml differs from the manifest"):  # an edit is caught by the manifest
        Run.load(run)
    _reseal(run)
    with pytest.raises(RunError, match="was trained with"):  # a resealed folder whose config and weights disagree
        Run.load(run).ensemble


def test_a_format_1_run_folder_still_loads(saved_run, fitted, data, tmp_path):
    """Run folders written before the estimator (format 1: the builder's fields at the top level) load unchanged."""
    _, query = data
    run = _copy(saved_run, tmp_path)
    state = torch.load(run / "ensemble.pt", weights_only=True)
    old = {k: v for k, v in state.items() if k != "builder"} | state["builder"] | {"format": 1}
    torch.save(old, run / "ensemble.pt")
    (run / "manifest.json").unlink()  # format 1 had none: loads with a warning that nothing is verified
    with pytest.warns(UserWarning, match="not verified"):
        loaded = Run.load(run)
    assert_same_prediction(loaded.ensemble.predict(query), fitted.predict(query))


@pytest.mark.parametrize("name", ["config.yaml", "ensemble.pt", "labelled.gpkg", "run.json", "manifest.json"])
def test_one_changed_byte_in_any_file_names_that_file(saved_run, tmp_path, name):
    run = _copy(saved_run, tmp_path)
    data = bytearray((run / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / name).write_bytes(bytes(data))
    with pytest.raises(RunError) as info:
        Run.load(run)
    assert (name if name != "manifest.json" else "differs") in str(info.value) or "manifest" in str(info.value)


class _Payload:
    """A pickle that creates a marker file when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["config.yaml", "ensemble.pt", "labelled.gpkg", "aoa.npz", "run.json", "manifest.json"])
def test_a_planted_pickle_is_refused_and_never_run(saved_run, tmp_path, name):
    import pickle

    run = _copy(saved_run, tmp_path)
    marker = tmp_path / "pwned"
    (run / name).write_bytes(pickle.dumps(_Payload(marker)))
    if name not in ("manifest.json", "run.json"):
        _reseal(run)  # a hostile sender rewrites the manifest too (run.json is never read: the manifest refuses it)
    with pytest.raises(RunError):
        Run.load(run)
    assert not marker.exists()


def test_a_truncated_geopackage_is_a_one_line_run_error(saved_run, tmp_path):
    run = _copy(saved_run, tmp_path)
    data = (run / "labelled.gpkg").read_bytes()
    (run / "labelled.gpkg").write_bytes(data[: len(data) // 3])
    with pytest.raises(RunError, match="labelled.gpkg differs"):
        Run.load(run)
    _reseal(run)
    with pytest.raises(RunError, match="labelled.gpkg cannot be read"):
        Run.load(run)



def test_auto_calibration_choice_is_recorded_and_survives_save_and_load(samples_factory, config_factory, tmp_path):
    import json

    lab = samples_factory(n=80, seed=3)
    cfg = config_factory(calibration={"method": "auto", "fraction": 0.3, "min_samples": 8, "blocks": 12})
    ens = DeepEnsemble(cfg).fit(lab)
    choice = ens.calibration_choice
    assert choice["requested"] == "auto"
    assert choice["method"] in ("identity", "variance", "isotonic", "isotonic_central")
    assert set(choice["selection"]["scores"]) == {"identity", "variance", "isotonic_central", "isotonic"}
    folder = Run(ens).save(tmp_path / "run").path
    assert json.loads((folder / "run.json").read_text())["calibration"]["method"] == choice["method"]
    loaded = Run.load(folder).ensemble
    assert loaded.calibrator.method == ens.calibrator.method
    assert loaded.calibrator.selection == ens.calibrator.selection
    q = samples_factory(n=12, seed=4)
    np.testing.assert_allclose(loaded.predict(q).mean, ens.predict(q, calibrated=False).mean, rtol=1e-6)  # mean kept
    # too few samples for a calibration part: auto says so instead of failing
    small = DeepEnsemble(config_factory(calibration={"method": "auto"})).fit(samples_factory(n=30, seed=5))
    assert small.calibration_choice["method"] == "identity"
    assert "min_samples" in small.calibrator.selection["reason"]


def _copy_run(saved_run, tmp_path, name):
    import shutil

    return Path(shutil.copytree(saved_run, tmp_path / name))


def test_parts_of_two_runs_are_refused_even_with_a_rewritten_manifest(saved_run, samples_factory, config_factory,
                                                                       tmp_path):
    import json

    import torch

    from sptgnn.estimator.manifest import write_manifest

    header = {k: v for k, v in json.loads((saved_run / "manifest.json").read_text()).items() if k != "files"}
    other = Run(DeepEnsemble(config_factory()).fit(samples_factory(n=30, seed=9))).save(tmp_path / "other").path
    swapped = _copy_run(saved_run, tmp_path, "swapped")
    (swapped / "ensemble.pt").write_bytes((other / "ensemble.pt").read_bytes())  # 30-sample weights, 36 samples
    (swapped / "manifest.json").unlink()
    write_manifest(swapped, header)
    with pytest.raises(RunError, match="mixes two runs|not the config"):
        Run.load(swapped)
    edited = _copy_run(saved_run, tmp_path, "edited")
    (edited / "config.yaml").write_text((edited / "config.yaml").read_text().replace("epochs: 5", "epochs: 6"))
    (edited / "manifest.json").unlink()
    write_manifest(edited, header)
    with pytest.raises(RunError, match="not the config"):
        Run.load(edited)
    empty = _copy_run(saved_run, tmp_path, "empty")
    (empty / "manifest.json").write_text(json.dumps(header | {"files": {}}))
    with pytest.raises(RunError, match="lists no file"):
        Run.load(empty)
    gutted = _copy_run(saved_run, tmp_path, "gutted")
    state = torch.load(gutted / "ensemble.pt", weights_only=True)
    state = {"format": 1, "members": state["members"]}  # claims format 1 but lacks its fields
    torch.save(state, gutted / "ensemble.pt")
    (gutted / "manifest.json").unlink()
    with pytest.raises(RunError, match="lacks what a run of format 1 holds"):
        with pytest.warns(UserWarning):
            Run.load(gutted)
