"""``sptgnn pretrain`` on a real GeoTIFF stack and fine-tuning with ``model.pretrained``: members start from the
checkpoint's encoders (and keep them with a zero rate), the streams are standardised with the cells' statistics, and
bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from helpers import soc_stack_and_points, stack_sections
from typer.testing import CliRunner

from sptgnn.cli import app
from sptgnn.pretrain import load_pretrained

H, W, RES = 24, 20, 10.0


@pytest.fixture(scope="module")
def stack_config(tmp_path_factory, config_dict_factory):
    d = tmp_path_factory.mktemp("pretrain")
    table = soc_stack_and_points(d, H, W, RES, corner=(3, 4), n=40, seed=4, first_row=3)
    raw = config_dict_factory(
        **stack_sections(d, table), model={"hidden": 16, "heads": 2},
        train={"members": 2, "epochs": 3}, pretrain={"epochs": 3, "batch_size": 64})
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return d, path, raw


def test_pretrain_cli_then_frozen_fine_tuning(stack_config):
    from sptgnn.config import load_config
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d, path, raw = stack_config
    res = CliRunner().invoke(app, ["pretrain", str(path), "--out", str(d / "pt")])
    assert res.exit_code == 0, res.output
    ckpt = load_pretrained(d / "pt")
    assert ckpt.meta["cells"] == H * W - 3 * 4  # every valid pixel, the nodata corner left out
    cfg = load_config(path, {"model": {"pretrained": str(d / "pt"), "pretrained_lr_scale": 0.0}})
    run = fit_run(cfg, load_samples(cfg.data), aoa=False)
    ens = run.ensemble
    env = ckpt.normalisation["environment"]
    np.testing.assert_array_equal(ens.builder.transform.mean["environment"], env["mean"])
    elev = np.asarray(run.ensemble.builder.labelled.stream("environment"))[:, 0]
    assert not np.isclose(env["mean"][0], elev.mean())  # the cells' mean, not the labelled samples'
    for member in ens.members:
        for k, v in member.encoders["environment"].state_dict().items():
            assert torch.equal(v, ckpt.state[f"encoders.environment.{k}"]), k
    # a positive rate fine-tunes them
    tuned = fit_run(load_config(path, {"model": {"pretrained": str(d / "pt"), "pretrained_lr_scale": 1.0}}),
                    load_samples(cfg.data), aoa=False)
    w = tuned.ensemble.members[0].encoders["environment"].state_dict()["0.weight"]
    assert not torch.equal(w, ckpt.state["encoders.environment.0.weight"])


def test_user_errors_are_one_line(stack_config, tmp_path):
    d, path, raw = stack_config
    limesoda = tmp_path / "limesoda.yaml"
    limesoda.write_text(yaml.safe_dump({"data": {"dataset": "limesoda:BB.30_2"}}))
    res = CliRunner().invoke(app, ["pretrain", str(limesoda), "--out", str(tmp_path / "pt")])
    assert res.exit_code != 0
    assert "add `data.rasters`" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "pt").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "model": {**raw["model"], "pretrained": str(tmp_path / "nothing")}}))
    res = CliRunner().invoke(app, ["train", str(bad), "--out", str(tmp_path / "run")])
    assert res.exit_code != 0
    assert "no pre-trained checkpoint" in res.output
    assert "Traceback" not in res.output


def test_max_cells_is_a_seeded_sample_of_the_valid_pixels(stack_config):
    from sptgnn.config import load_config
    from sptgnn.pretrain.cells import raster_cells

    rasters = load_config(stack_config[1]).data.rasters
    every = raster_cells(rasters, window=8)  # several windows: the sample is drawn as they are read
    rows = {tuple(r) for r in np.c_[every.streams["environment"], every.xy_m]}
    a, b = raster_cells(rasters, 50, seed=3, window=8), raster_cells(rasters, 50, seed=3, window=8)
    assert len(a) == 50
    assert len({tuple(r) for r in a.xy_m}) == 50  # no pixel twice
    assert {tuple(r) for r in np.c_[a.streams["environment"], a.xy_m]} <= rows  # real valid pixels with their values
    np.testing.assert_array_equal(a.xy_m, b.xy_m)
    assert not np.array_equal(raster_cells(rasters, 50, seed=4, window=8).xy_m, a.xy_m)
    assert len(raster_cells(rasters, 10_000, window=8)) == len(every)
    # every window contributes in proportion: the sample's rows span the raster, not the first windows read
    assert np.ptp(a.xy_m[:, 1]) > 0.6 * np.ptp(every.xy_m[:, 1])
