"""TerraMind (IBM/ESA geospatial foundation model) as the imagery encoder, through terratorch — an optional extra.

``pip install "sptgnn[terramind]"`` installs terratorch; it is imported only when this encoder is built, so the rest of
sptgnn never needs it. Weights are read from a local checkpoint (``ckpt_path``): nothing is downloaded.

Per modality the chips' channels are normalised with TerraMind v1's pre-training mean and standard deviation
(:data:`TERRAMIND_V1_STATS`, band order as in pre-training), invalid pixels are set to 0 (the pre-training mean), the
backbone maps the modalities to tokens, and the tokens of the last layer are mean-pooled to ``(num_samples, dim)``
(dim 192 tiny, 384 small, 768 base, 1024 large). The backbone is frozen by default; :meth:`TerraMindEncoder.parameter_groups`
gives it its own learning rate for fine-tuning.

Reference: Jakubik et al. (2025), "TerraMind: Large-Scale Generative Multimodality for Earth Observation", ICCV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from sptgnn.data.chips import ChipError, Chips
from sptgnn.imagery.encoders import ChipEncoder

# TerraMind v1 pre-training statistics, copied from terratorch,
# terratorch/models/backbones/terramind/model/terramind_register.py, `v1_pretraining_mean` / `v1_pretraining_std`,
# keys 'untok_sen2l2a@224', 'untok_sen1grd@224', 'untok_dem@224' (IBM/terratorch commit
# 213d29a6e579fd24bd96fd81b581a89927354e47). Band order of PRETRAINED_BANDS in the same file:
# S2L2A = COASTAL_AEROSOL, BLUE, GREEN, RED, RED_EDGE_1, RED_EDGE_2, RED_EDGE_3, NIR_BROAD, NIR_NARROW, WATER_VAPOR,
# SWIR_1, SWIR_2 (Sentinel-2 B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12; L2A reflectance × 10,000);
# S1GRD = VV, VH (dB); DEM = elevation (m).
TERRAMIND_V1_STATS: dict[str, tuple[list[float], list[float]]] = {
    "S2L2A": (
        [1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234, 3132.22, 3162.988, 2424.884, 1857.648],
        [2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918, 1753.829, 1797.379, 1434.261, 1334.311],
    ),
    "S1GRD": ([-12.599, -20.293], [5.195, 5.890]),
    "DEM": ([670.665], [951.272]),
}

TERRAMIND_BANDS: dict[str, list[str]] = {
    "S2L2A": ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"],
    "S1GRD": ["VV", "VH"],
    "DEM": ["DEM"],
}

BACKBONES = {"terramind_v1_tiny": 192, "terramind_v1_small": 384, "terramind_v1_base": 768, "terramind_v1_large": 1024}
_HF = {"terramind_v1_tiny": "ibm-esa-geospatial/TerraMind-1.0-tiny", "terramind_v1_small": "ibm-esa-geospatial/TerraMind-1.0-small",
       "terramind_v1_base": "ibm-esa-geospatial/TerraMind-1.0-base", "terramind_v1_large": "ibm-esa-geospatial/TerraMind-1.0-large"}
INSTALL_HINT = (
    "TerraMind needs the optional extra: pip install \"sptgnn[terramind]\" (installs terratorch; it needs a torch build "
    "that terratorch supports). Without it, use imagery.encoder: random_conv (offline, weight-free)"
)


class TerraMindError(RuntimeError):
    """TerraMind cannot be used: extra not installed, weights missing or not matching; the message says what to do."""


def _build_backbone(backbone: str, modalities: list[str]) -> nn.Module:
    """An untrained TerraMind backbone from terratorch's registry (weights are loaded by :func:`load_checkpoint`)."""
    try:
        from terratorch.registry import BACKBONE_REGISTRY  # noqa: PLC0415 - optional, heavy
    except Exception as exc:  # noqa: BLE001 - ImportError, or terratorch failing to import on this torch
        raise TerraMindError(f"{INSTALL_HINT} (import failed: {type(exc).__name__}: {exc})") from None
    return BACKBONE_REGISTRY.build(f"terratorch_{backbone}", modalities=modalities, pretrained=False)


def load_checkpoint(model: nn.Module, ckpt_path: str | Path | None, backbone: str) -> None:
    """Load local TerraMind weights into ``model``, strictly.

    Raises:
        TerraMindError: No path, a missing file (the message says where to get and put it), an unreadable file, or
            keys/shapes that do not match the backbone (the first mismatching keys are named).
    """
    where = (f"download {backbone.replace('terramind_v1_', 'TerraMind_v1_')}.pt from https://huggingface.co/{_HF.get(backbone, '')} "
             "and set imagery.terramind.ckpt_path to the file")
    if not ckpt_path:
        raise TerraMindError(f"imagery.terramind.ckpt_path is not set: TerraMind weights are never downloaded; {where}")
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise TerraMindError(f"TerraMind checkpoint {path} not found; {where}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise TerraMindError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}); {where}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TerraMindError(f"{path} does not hold a state dict; {where}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shape)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[:3]})")
        raise TerraMindError(
            f"{path} does not match backbone {backbone} with these modalities: {'; '.join(parts)}. Is it the checkpoint "
            f"of {backbone} (and not another size or a fine-tuned head)? {where}"
        )
    model.load_state_dict(state, strict=True)


class TerraMindEncoder(nn.Module, ChipEncoder):
    """TerraMind backbone over S2 L2A / S1 GRD / DEM chips, token mean-pooled.

    Args:
        backbone: ``terramind_v1_tiny``, ``_small``, ``_base`` or ``_large``.
        ckpt_path: Local checkpoint of that backbone.
        modalities: Channel names per modality, in TerraMind's band order, e.g. ``{"S2L2A": ["s2:B01", ...], "DEM":
            ["dem:DEM"]}`` (see :data:`TERRAMIND_BANDS`).
        finetune: Train the backbone with the model (its own learning rate, :meth:`parameter_groups`); frozen otherwise.
        batch_size: Chips per backbone call in :meth:`encode`.
        build: Backbone factory ``(backbone, modality names) → nn.Module`` (tests pass a mock; default terratorch).

    Shapes:
        chips ``(N, C, H, W)``, ``H`` and ``W`` multiples of 16 (TerraMind's patch size; 224 in pre-training) →
        ``(N, dim)``.

    Raises:
        TerraMindError: terratorch not installed, weights missing or not matching.
        ChipError: A modality's channels are not in the chips, a wrong number of bands, or chips not a multiple of 16.
    """

    name = "terramind"

    def __init__(self, backbone: str = "terramind_v1_base", ckpt_path: str | Path | None = None,
                 modalities: dict[str, list[str]] | None = None, finetune: bool = False, batch_size: int = 8,
                 build: Callable[[str, list[str]], nn.Module] | None = None):
        nn.Module.__init__(self)
        if backbone not in BACKBONES:
            raise TerraMindError(f"unknown TerraMind backbone '{backbone}'; valid: {', '.join(BACKBONES)}")
        modalities = dict(modalities or {})
        if not modalities:
            raise ChipError("imagery.terramind.modalities is empty; map S2L2A, S1GRD and/or DEM to chip channels")
        for mod, chans in modalities.items():
            if mod not in TERRAMIND_V1_STATS:
                raise ChipError(f"unknown TerraMind modality '{mod}'; valid: {list(TERRAMIND_V1_STATS)}")
            if len(chans) != len(TERRAMIND_BANDS[mod]):
                raise ChipError(f"TerraMind modality {mod} takes {len(TERRAMIND_BANDS[mod])} bands {TERRAMIND_BANDS[mod]} in "
                                f"this order; got {len(chans)} channels {chans}")
        self.backbone_name, self.modalities, self.finetune, self.batch_size = backbone, modalities, finetune, batch_size
        self.backbone = (build or _build_backbone)(backbone, list(modalities))
        load_checkpoint(self.backbone, ckpt_path, backbone)
        for mod, (mean, std) in TERRAMIND_V1_STATS.items():
            if mod in modalities:
                self.register_buffer(f"mean_{mod}", torch.tensor(mean).view(1, -1, 1, 1))
                self.register_buffer(f"std_{mod}", torch.tensor(std).view(1, -1, 1, 1))
        self.backbone.requires_grad_(finetune)

    def normalise(self, chips: Chips) -> dict[str, Tensor]:
        """Per-modality inputs ``{modality: (N, C_mod, H, W)}`` standardised with :data:`TERRAMIND_V1_STATS`, 0 where
        invalid."""
        self._single_date(chips)
        h, w = chips.values.shape[-2:]
        if h % 16 or w % 16:
            raise ChipError(f"TerraMind takes chips whose size is a multiple of 16 (224 in pre-training); imagery.chip_size "
                            f"gives {h}×{w}")
        out = {}
        for mod, chans in self.modalities.items():
            sel = chips.select(chans)
            x = (torch.from_numpy(sel.values) - getattr(self, f"mean_{mod}")) / getattr(self, f"std_{mod}")
            out[mod] = torch.where(torch.from_numpy(sel.mask), x, torch.zeros(()))
        return out

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        """Mean of the last layer's tokens: ``{modality: (B, C, H, W)}`` → ``(B, dim)``."""
        tokens = self.backbone(inputs)
        if isinstance(tokens, (list, tuple)):
            tokens = tokens[-1]
        if tokens.ndim != 3:
            raise TerraMindError(f"TerraMind backbone returned shape {tuple(tokens.shape)}; expected (batch, tokens, dim)")
        return tokens.mean(dim=1)

    def fit(self, chips: Chips) -> "TerraMindEncoder":
        """Check that the chips carry every modality's channels (nothing is fitted: the statistics are pre-training's)."""
        self.normalise(chips.subset(slice(0, 1)))
        return self

    @torch.no_grad()
    def encode(self, chips: Chips) -> np.ndarray:
        was = self.training
        self.eval()
        inputs = self.normalise(chips)
        out = [self({m: x[i:i + self.batch_size] for m, x in inputs.items()}) for i in range(0, len(chips), self.batch_size)]
        self.train(was)
        return torch.cat(out).double().numpy() if out else np.zeros((0, self.dim))

    @property
    def dim(self) -> int:
        return BACKBONES[self.backbone_name]

    def parameter_groups(self, lr: float, weight_decay: float = 0.0) -> list[dict]:
        """Optimiser parameter groups of the backbone with its own learning rate (empty when frozen)."""
        if not self.finetune:
            return []
        return [{"params": [p for p in self.backbone.parameters() if p.requires_grad], "lr": lr, "weight_decay": weight_decay}]

    def state(self) -> dict:
        return {}
