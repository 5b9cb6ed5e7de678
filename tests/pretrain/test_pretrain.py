"""Masked-reconstruction pre-training: hidden values never reach the encoder, no target is read, the masks hide what
they say, reconstruction beats the mean on structured covariates, checkpoints load strictly into members, and a
fine-tuning run starts from (and with a zero rate keeps) the pre-trained encoders."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch

from sptgnn.geo import metric_coords
from sptgnn.nn.model import SpTGNN
from sptgnn.pretrain import Cells, PretrainError, apply_pretrained, load_pretrained, save_pretrained
from sptgnn.pretrain.autoencoder import MaskedStreamAutoencoder
from sptgnn.pretrain.masking import hide, joint_mask, neighbourhood_mask
from sptgnn.pretrain.trainer import pretrain_cells


def _frame(n=400, seed=0, target=None):
    """Cells on a 20 × 20 grid (100 m) whose environment bands are smooth functions of position and of each other."""
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(n), 20)
    x, y = 500_000 + 100.0 * c, 5_000_000 - 100.0 * r
    a = np.sin(c / 4.0) + 0.05 * rng.normal(size=n)
    b = np.cos(r / 5.0) + 0.05 * rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "b": b, "ab": a + b, "a2": 2 * a - b, "nir": a * 0.5 + 0.1 * rng.normal(size=n),
                          "soc_g_kg": target if target is not None else np.full(n, np.nan)})
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs="EPSG:32633")


GROUPS = {"environment": ["a", "b", "ab", "a2"], "imagery": ["nir"]}


def _cells(frame, groups):
    """Cells of a point frame's feature columns (the target column, NaN or not, is not read)."""
    xy = np.c_[frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()]
    return Cells({s: frame[c].to_numpy(np.float64) for s, c in groups.items()}, {s: list(c) for s, c in groups.items()},
                 metric_coords(xy, frame.crs), "frame")


@pytest.fixture(scope="module")
def small_config(config_factory):
    return config_factory(model={"hidden": 16, "heads": 2, "dropout": 0.0},
                          pretrain={"epochs": 15, "batch_size": 128, "validation_fraction": 0.2, "seed": 3})


def test_hidden_values_never_reach_the_encoder(small_config):
    torch.manual_seed(0)
    model = MaskedStreamAutoencoder({"environment": 4, "imagery": 1}, small_config.model).eval()
    x = {"environment": torch.randn(50, 4), "imagery": torch.randn(50, 1)}
    nbrs = torch.randint(0, 50, (50, 6))
    gen = torch.Generator().manual_seed(1)
    mask = {s: joint_mask(v.shape[1], nbrs[:, :3], 0.4, 0.3, gen) for s, v in x.items()}
    assert mask["environment"].any()
    assert (~mask["environment"]).any()
    perturbed = {s: torch.where(mask[s], v + 100 * torch.randn_like(v), v) for s, v in x.items()}
    for s in x:
        assert torch.equal(hide(x[s], mask[s]), hide(perturbed[s], mask[s]))
    a, b = model(x, mask, nbrs), model(perturbed, mask, nbrs)
    for s in x:
        assert torch.equal(a[s], b[s])
    # and a visible value does reach it
    changed = {s: v.clone() for s, v in x.items()}
    i, j = map(int, torch.nonzero(~mask["environment"])[0])
    changed["environment"][i, j] += 5.0
    assert not torch.equal(model(changed, mask, nbrs)["environment"], a["environment"])


def test_neighbourhood_mask_hides_centre_and_its_neighbours():
    nbrs = torch.tensor([[1, 2], [0, 2], [3, 1], [2, 0]])
    hidden = neighbourhood_mask(nbrs, 0.999 * 3, torch.Generator().manual_seed(0))  # every cell a centre
    assert hidden.all()
    gen = torch.Generator().manual_seed(5)
    big = torch.as_tensor(np.random.default_rng(0).integers(0, 2000, (2000, 4)))
    share = float(neighbourhood_mask(big, 0.25, gen).float().mean())
    assert 0.15 < share < 0.3  # centres 0.25 / 5, each hiding up to 5 cells (overlaps make it less)


def test_pretraining_reads_no_target_and_is_deterministic(small_config):
    nan = _cells(_frame(), GROUPS)
    labelled = _cells(_frame(target=np.random.default_rng(1).gamma(2, 5, 400)), GROUPS)
    assert nan.fingerprint() == labelled.fingerprint()
    r1, r2 = pretrain_cells(nan, small_config), pretrain_cells(labelled, small_config)
    for k, v in r1.model.state_dict().items():
        assert torch.equal(v, r2.model.state_dict()[k]), k
    assert r1.history == r2.history


def test_reconstruction_beats_the_mean_on_structured_cells(small_config):
    cfg = small_config.updated(pretrain={"epochs": 80, "lr": 3e-3})
    result = pretrain_cells(_cells(_frame(), GROUPS), cfg)
    assert result.history[-1]["val_rmse"] < 0.8 * result.val_rmse_mean_fill
    assert result.history[-1]["val_rmse"] < result.history[0]["val_rmse"]


def test_checkpoint_loads_strictly_and_names_mismatching_keys(tmp_path, small_config):
    result = pretrain_cells(_cells(_frame(), GROUPS), small_config)
    save_pretrained(result, small_config, tmp_path / "pt")
    ckpt = load_pretrained(tmp_path / "pt")
    dims = {"environment": 4, "imagery": 1, "position": 2}
    model = SpTGNN(small_config.model, ["spatial"], dims)
    assert sorted(apply_pretrained(model, ckpt)) == ["environment", "imagery"]
    for k, v in model.encoders["environment"].state_dict().items():
        assert torch.equal(v, ckpt.state[f"encoders.environment.{k}"])
    wider = SpTGNN(small_config.updated(model={"hidden": 32}).model, ["spatial"], dims)
    with pytest.raises(PretrainError, match=r"encoders\.environment\.0\.weight: checkpoint \(16, 4\) vs model \(32, 4\)"):
        apply_pretrained(wider, ckpt)
    other_bands = SpTGNN(small_config.model, ["spatial"], {"environment": 3, "imagery": 1})
    with pytest.raises(PretrainError, match="encoders.environment.0.weight"):
        apply_pretrained(other_bands, ckpt)
    no_imagery = SpTGNN(small_config.model, ["spatial"], {"environment": 4})
    with pytest.raises(PretrainError, match="stream 'imagery' is not in the model"):
        apply_pretrained(no_imagery, ckpt)
    with pytest.raises(PretrainError, match="no pre-trained checkpoint"):
        load_pretrained(tmp_path / "missing")
    with pytest.raises(FileExistsError):
        save_pretrained(result, small_config, tmp_path / "pt")


def test_a_pickled_checkpoint_is_refused_without_torchs_unsafe_advice(tmp_path):
    import json
    import pickle

    from sptgnn.pretrain.checkpoint import FORMAT, META, WEIGHTS

    class Payload:  # what a pickle may carry: an object whose loading runs code
        def __reduce__(self):
            return (print, ("ran",))

    (tmp_path / META).write_text(json.dumps({"format": FORMAT}))
    (tmp_path / WEIGHTS).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(PretrainError, match="not a checkpoint of `sptgnn pretrain`") as err:
        load_pretrained(tmp_path)
    assert "weights_only" not in str(err.value)
    assert "nothing in it was run" in str(err.value)

