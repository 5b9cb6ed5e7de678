"""TerraMind adapter with a mocked backbone (terratorch is not importable on the CPU torch used here; weights are
never downloaded): normalisation constants, token pooling, errors for a missing extra, weights or mismatching keys."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import sptgnn.imagery.terramind as tm
from sptgnn.data.chips import ChipError, Chips
from sptgnn.imagery.terramind import TERRAMIND_V1_STATS, TerraMindEncoder, TerraMindError

# Published TerraMind v1 pre-training statistics (terratorch terramind_register.py, v1_pretraining_mean/std), typed in
# again here so that an edit of the module's table fails this test.
PUBLISHED = {
    "S2L2A": ([1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234, 3132.22, 3162.988, 2424.884,
               1857.648],
              [2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918, 1753.829, 1797.379, 1434.261,
               1334.311]),
    "S1GRD": ([-12.599, -20.293], [5.195, 5.890]),
    "DEM": ([670.665], [951.272]),
}
S2 = [f"s2:{b}" for b in ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]]
MODS = {"S2L2A": S2, "S1GRD": ["s1:VV", "s1:VH"], "DEM": ["dem:DEM"]}
DIM = 192


class MockTerraMind(nn.Module):
    """Stands in for terratorch's TerraMindViT: a dict of ``(B, C, H, W)`` per modality → a list of per-layer token
    tensors ``(B, tokens, dim)``, 16 × 16 patches per modality."""

    def __init__(self, modalities):
        super().__init__()
        self.embed = nn.ModuleDict({m: nn.Linear(len(PUBLISHED[m][0]) * 256, DIM) for m in modalities})
        self.seen = None

    def forward(self, x):
        self.seen = {m: v.clone() for m, v in x.items()}
        tokens = []
        for m, v in x.items():
            b, c, h, w = v.shape
            patches = v.unfold(2, 16, 16).unfold(3, 16, 16).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * 256)
            tokens.append(self.embed[m](patches))
        out = torch.cat(tokens, dim=1)
        return [out * 0.5, out]


@pytest.fixture
def mock_build(monkeypatch):
    built = {}

    def build(name, modalities):
        built["name"], built["modalities"] = name, modalities
        torch.manual_seed(0)
        built["model"] = MockTerraMind(modalities)
        return built["model"]

    monkeypatch.setattr(tm, "_build_backbone", build)
    return built


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "TerraMind_v1_tiny.pt"
    torch.save(MockTerraMind(list(MODS)).state_dict(), path)
    return path


def _chips(n=3, size=32) -> Chips:
    rng = np.random.default_rng(0)
    channels = S2 + ["s1:VV", "s1:VH", "dem:DEM", "extra:x"]
    values = rng.uniform(0, 3000, (n, len(channels), size, size)).astype(np.float32)
    return Chips(values, np.ones(values.shape, bool), channels, None, np.arange(n))


def test_normalisation_constants_equal_the_published_ones():
    assert set(TERRAMIND_V1_STATS) == set(PUBLISHED)
    for mod, (mean, std) in PUBLISHED.items():
        assert list(TERRAMIND_V1_STATS[mod][0]) == mean
        assert list(TERRAMIND_V1_STATS[mod][1]) == std
        assert len(mean) == len(tm.TERRAMIND_BANDS[mod])


def test_encode_normalises_and_mean_pools_the_last_layer(mock_build, ckpt):
    enc = TerraMindEncoder("terramind_v1_tiny", ckpt, MODS)
    chips = _chips()
    chips.mask[0, 3, 0, 0] = False                   # an invalid S2 B04 pixel
    out = enc.fit(chips).encode(chips)
    assert out.shape == (3, DIM)
    assert enc.dim == DIM
    assert mock_build["name"] == "terramind_v1_tiny"
    assert mock_build["modalities"] == list(MODS)
    seen = mock_build["model"].seen                    # last batch: all 3 chips (batch_size 8)
    mean, std = PUBLISHED["S2L2A"]
    expected = (chips.values[:, :12] - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    expected[0, 3, 0, 0] = 0.0
    np.testing.assert_allclose(seen["S2L2A"].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(seen["DEM"].numpy(), (chips.values[:, 14:15] - 670.665) / 951.272, rtol=1e-5)
    with torch.no_grad():
        tokens = mock_build["model"](seen)[-1]
    np.testing.assert_allclose(out, tokens.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    # per-sample: a smaller batch gives the same features
    enc.batch_size = 1
    np.testing.assert_allclose(enc.encode(chips), out, rtol=1e-5, atol=1e-6)


def test_frozen_by_default_and_own_learning_rate_when_finetuned(mock_build, ckpt):
    frozen = TerraMindEncoder("terramind_v1_tiny", ckpt, MODS)
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert frozen.parameter_groups(1e-5) == []
    tuned = TerraMindEncoder("terramind_v1_tiny", ckpt, MODS, finetune=True)
    groups = tuned.parameter_groups(1e-5)
    assert groups[0]["lr"] == 1e-5
    assert len(groups[0]["params"]) == len(list(tuned.backbone.parameters()))


def test_missing_extra_says_how_to_install(monkeypatch, ckpt):
    monkeypatch.setitem(sys.modules, "terratorch", None)          # import terratorch -> ImportError
    monkeypatch.setitem(sys.modules, "terratorch.registry", None)
    with pytest.raises(TerraMindError, match=r'pip install "sptgnn\[terramind\]"'):
        TerraMindEncoder("terramind_v1_tiny", ckpt, MODS)


def test_missing_weights_say_where_to_put_the_checkpoint(mock_build, tmp_path):
    with pytest.raises(TerraMindError, match="ckpt_path is not set.*huggingface.co/ibm-esa-geospatial/TerraMind-1.0-base"):
        TerraMindEncoder("terramind_v1_base", None, MODS)
    with pytest.raises(TerraMindError, match=r"nowhere\.pt not found.*set imagery.terramind.ckpt_path"):
        TerraMindEncoder("terramind_v1_base", tmp_path / "nowhere.pt", MODS)


def test_checkpoint_with_mismatching_keys_is_a_clear_error(mock_build, tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.blocks.0.weight": torch.zeros(3), "embed.S2L2A.weight": torch.zeros(5, 5)}, path)
    with pytest.raises(TerraMindError, match=r"does not match backbone terramind_v1_tiny.*missing.*unexpected.*wrong shape"):
        TerraMindEncoder("terramind_v1_tiny", path, MODS)


def test_bad_modalities_and_chips(mock_build, ckpt):
    with pytest.raises(ChipError, match="takes 2 bands"):
        TerraMindEncoder("terramind_v1_tiny", ckpt, {"S1GRD": ["s1:VV"]})
    with pytest.raises(ChipError, match="unknown TerraMind modality"):
        TerraMindEncoder("terramind_v1_tiny", ckpt, {"S2L1C": S2})
    enc = TerraMindEncoder("terramind_v1_tiny", ckpt, MODS)
    chips = _chips()
    with pytest.raises(ChipError, match=r"no channel\(s\) \['s1:VH'\]"):
        enc.fit(chips.select([c for c in chips.channels if c != "s1:VH"]))
    with pytest.raises(ChipError, match="multiple of 16"):
        enc.fit(_chips(size=20))
    with pytest.raises(TerraMindError, match="unknown TerraMind backbone"):
        TerraMindEncoder("terramind_v2_huge", ckpt, MODS)


def test_finetuning_updates_the_backbone_with_its_own_learning_rate(mock_build, ckpt):
    enc = TerraMindEncoder("terramind_v1_tiny", ckpt, MODS, finetune=True)
    head = nn.Linear(DIM, 1)
    opt = torch.optim.SGD([{"params": head.parameters(), "lr": 0.1}, *enc.parameter_groups(lr=0.0)])
    before = {k: v.clone() for k, v in enc.backbone.state_dict().items()}
    inputs = enc.normalise(_chips(n=2))
    loss = head(enc(inputs)).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in enc.backbone.parameters())
    opt.step()
    # backbone lr 0: unchanged; with its own positive lr it moves
    assert all(torch.equal(before[k], v) for k, v in enc.backbone.state_dict().items())
    opt = torch.optim.SGD(enc.parameter_groups(lr=1e-2))
    opt.step()
    assert not all(torch.equal(before[k], v) for k, v in enc.backbone.state_dict().items())
