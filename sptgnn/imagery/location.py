"""The location foundation-model stream: GeoCLIP's pre-trained location encoder, projected label-free.

GeoCLIP (Vivanco Cepeda, Nayak & Shah 2023, "GeoCLIP: Clip-Inspired Alignment between Locations and Images for
Effective Worldwide Geo-localization", NeurIPS) trains a location encoder contrastively against 4.7 M geotagged images:
the Equal Earth projection of (lat, lon), random Fourier features at three scales (σ = 2⁰, 2⁴, 2⁸) and an MLP per
scale, summed to a 512-d embedding. Its weights ship inside the ``geoclip`` wheel
(``geoclip/model/weights/location_encoder_weights.pth``, MIT), so the stream runs offline; nothing is downloaded.

The package's ``__init__`` imports its image encoder (``transformers``, ``torchvision``), which the location encoder
does not need and which does not import beside the CPU torch of the default set-up. :func:`geoclip_encoder` therefore
imports the package's own ``model/location_encoder.py`` (and the modules it imports) under a private package name
without running those ``__init__`` files, and loads the weights with ``torch.load(weights_only=True)``. Install the
package without its dependencies: ``pip install --no-deps geoclip==1.3.0``.

:class:`LocationFM` turns the frozen 512-d embeddings into a stream: a PCA to ``dims`` components (``projection:
pca``) or the whole embedding for the stream encoder to project (``learned``), standardised. The PCA and the scales are
fitted on the labelled samples of a fold only (DESIGN.md rule 1) and never see a label.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from sptgnn.errors import UserError

GEOCLIP_DIM = 512  #: Width of a GeoCLIP location embedding.
GEOCLIP_PIN = "1.3.0"  #: The release whose files this module was checked against.
_ALIAS = "_sptgnn_geoclip"  # private package name the location encoder's modules are imported under
_WEIGHTS = Path("model") / "weights" / "location_encoder_weights.pth"
_BATCH = 4096  # locations per forward pass of the encoder
CACHE_LIMIT = 250_000  #: Locations whose embeddings (2 KiB each) are kept in memory per process.


class LocationEncoderMissing(UserError):
    """The location stream needs the ``geoclip`` package, which is not installed (or lacks its weights file)."""


class LocationWeightsChanged(UserError):
    """A saved run's location stream was fitted on other GeoCLIP weights than the installed ones."""


def require_geoclip() -> None:
    """Check, before any work starts, that the location encoder is installed.

    Raises:
        LocationEncoderMissing: ``geoclip`` (or its weights file) is not installed.
    """
    _package_dir()


def _package_dir() -> Path:
    spec = importlib.util.find_spec("geoclip")  # locates the package without importing it
    root = None if spec is None or not spec.submodule_search_locations else Path(list(spec.submodule_search_locations)[0])
    if root is None or not (root / _WEIGHTS).is_file():
        raise LocationEncoderMissing(
            "model.streams has location_fm, which needs GeoCLIP's location encoder: pip install --no-deps "
            f"geoclip=={GEOCLIP_PIN} (its image-encoder dependencies are not needed), or leave location_fm out")
    return root


@lru_cache(maxsize=1)
def geoclip_weights_sha256() -> str:
    """SHA-256 of the installed location-encoder weights file (the stream's provenance).

    Raises:
        LocationEncoderMissing: ``geoclip`` is not installed.
    """
    return hashlib.sha256((_package_dir() / _WEIGHTS).read_bytes()).hexdigest()


def geoclip_location_encoder_class() -> type:
    """The ``LocationEncoder`` class of the installed ``geoclip`` package, imported from its own
    ``model/location_encoder.py`` without running the package's ``__init__`` files (see the module docstring).

    Raises:
        LocationEncoderMissing: ``geoclip`` is not installed.
    """
    root = _package_dir()
    for name, path in ((_ALIAS, root), (f"{_ALIAS}.model", root / "model")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
    return importlib.import_module(f"{_ALIAS}.model.location_encoder").LocationEncoder


@lru_cache(maxsize=1)
def geoclip_encoder() -> torch.nn.Module:
    """GeoCLIP's pre-trained location encoder, frozen, in eval mode, on the CPU.

    Shapes:
        ``(n, 2)`` (latitude, longitude) in degrees → ``(n, 512)``.

    Raises:
        LocationEncoderMissing: ``geoclip`` is not installed.
    """
    cls = geoclip_location_encoder_class()
    with torch.random.fork_rng(devices=[]):  # its random Fourier matrices are drawn, then overwritten by the weights:
        encoder = cls(from_pretrained=False)  # the caller's random stream must not move
    state = torch.load(_package_dir() / _WEIGHTS, map_location="cpu", weights_only=True)
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


_cache: dict[tuple[float, float], np.ndarray] = {}


def clear_cache() -> None:
    """Forget the loaded encoder, its weights' hash and every cached embedding (e.g. after installing ``geoclip``)."""
    _cache.clear()
    geoclip_encoder.cache_clear()
    geoclip_weights_sha256.cache_clear()


def geoclip_embeddings(lonlat: np.ndarray) -> np.ndarray:
    """GeoCLIP location embeddings of points, computed once per location and process (up to :data:`CACHE_LIMIT`).

    Args:
        lonlat: ``(n, 2)`` longitude, latitude in degrees (WGS 84).

    Returns:
        ``(n, 512)`` float32 embeddings.

    Raises:
        LocationEncoderMissing: ``geoclip`` is not installed.
        ValueError: A coordinate is not finite or outside the valid range.
    """
    lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    bad = ~np.isfinite(lonlat).all(1) | (np.abs(lonlat[:, 1]) > 90) | (np.abs(lonlat[:, 0]) > 180)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} location(s) have no valid longitude/latitude, e.g. {lonlat[bad][0]}; "
                         "check the samples' CRS")
    keys = list(map(tuple, lonlat.tolist()))
    missing = sorted({k for k in keys if k not in _cache})
    if missing:
        encoder = geoclip_encoder()
        latlon = torch.tensor(np.asarray(missing)[:, ::-1].copy(), dtype=torch.float32)
        with torch.no_grad():
            new = torch.cat([encoder(latlon[i:i + _BATCH]) for i in range(0, len(latlon), _BATCH)]).numpy()
        fresh = dict(zip(missing, new))
        if len(_cache) + len(fresh) <= CACHE_LIMIT:
            _cache.update(fresh)
    else:
        fresh = {}
    return np.stack([_cache[k] if k in _cache else fresh[k] for k in keys]) if keys else np.zeros((0, GEOCLIP_DIM),
                                                                                                   np.float32)


class LocationFM:
    """The location stream: frozen GeoCLIP embeddings, a label-free projection and a standardisation, fitted on the
    labelled samples of a fold.

    Args:
        dims: Components kept by ``projection: pca``.
        projection: ``pca`` (principal components of the labelled samples' embeddings) or ``learned`` (the whole
            512-d embedding; the stream encoder learns the projection).
        encoder: ``geoclip`` (the only location encoder with weights that ship in a wheel).
        finetune: The members fine-tune the encoder themselves: the stream is each location's (latitude, longitude) in
            degrees, the encoder's input (:class:`~sptgnn.nn.location.FineTunedLocationEncoder`).

    Shapes:
        ``lonlat`` ``(n, 2)`` degrees → ``(n, dims)`` (``pca``), ``(n, 512)`` (``learned``) or ``(n, 2)``
        (``finetune``).
    """

    def __init__(self, dims: int = 16, projection: str = "pca", encoder: str = "geoclip", finetune: bool = False):
        if encoder != "geoclip":
            raise ValueError(f"unknown location encoder {encoder!r}; valid: geoclip")
        self.dims, self.projection, self.encoder, self.finetune = dims, projection, encoder, finetune
        self.components: np.ndarray | None = None  # (k, 512) principal axes, or None for "learned"
        self.centre: np.ndarray | None = None  # (512,) mean embedding of the labelled samples
        self.mean: np.ndarray | None = None  # (k,) and scale (k,) of the projected labelled samples
        self.scale: np.ndarray | None = None
        self.weights_sha256: str | None = None

    @property
    def feature_names(self) -> list[str]:
        """Names of the stream's features (``geoclip_000`` …)."""
        if self.finetune:
            return ["latitude", "longitude"]
        width = GEOCLIP_DIM if self.components is None else len(self.components)
        return [f"{self.encoder}_{i:03d}" for i in range(width)]

    def fit(self, lonlat: np.ndarray) -> "LocationFM":
        """Fit the projection and standardisation on labelled locations ``(n, 2)`` (lon, lat in degrees); labels are
        never read.

        Raises:
            LocationEncoderMissing: ``geoclip`` is not installed.
        """
        from sklearn.decomposition import PCA

        if self.finetune:  # the members embed the locations themselves
            self.weights_sha256 = geoclip_weights_sha256()
            return self
        e = geoclip_embeddings(lonlat).astype(np.float64)
        self.centre = e.mean(0)
        if self.projection == "pca":
            k = max(1, min(self.dims, len(e) - 1, GEOCLIP_DIM))
            self.components = PCA(n_components=k, svd_solver="full").fit(e).components_
        z = self._project(e)
        sd = z.std(0)
        self.mean, self.scale = z.mean(0), np.where(sd > 0, sd, 1.0)
        self.weights_sha256 = geoclip_weights_sha256()  # also marks the projection fitted
        return self

    def _project(self, e: np.ndarray) -> np.ndarray:
        return e if self.components is None else (e - self.centre) @ self.components.T

    def transform(self, lonlat: np.ndarray) -> np.ndarray:
        """The standardised stream ``(n, k)`` of locations ``(n, 2)`` (lon, lat in degrees).

        Raises:
            RuntimeError: Called before :meth:`fit`.
        """
        if self.weights_sha256 is None:
            raise RuntimeError("LocationFM.transform called before fit")
        if self.finetune:
            return np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)[:, ::-1].copy()
        return (self._project(geoclip_embeddings(lonlat).astype(np.float64)) - self.mean) / self.scale

    def state(self) -> dict:
        """The fitted projection as tensors and strings (for ``torch.save(weights_only=True)``)."""
        t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
        return {"dims": self.dims, "projection": self.projection, "encoder": self.encoder, "finetune": self.finetune,
                "components": t(self.components), "centre": t(self.centre), "mean": t(self.mean),
                "scale": t(self.scale), "weights_sha256": self.weights_sha256}

    @classmethod
    def from_state(cls, state: dict) -> "LocationFM":
        """The projection of :meth:`state`, checked against the installed weights.

        Raises:
            LocationEncoderMissing: ``geoclip`` is not installed.
            LocationWeightsChanged: The installed weights differ from those the run was fitted with.
        """
        fm = cls(state["dims"], state["projection"], state["encoder"], bool(state.get("finetune", False)))
        a = lambda v: None if v is None else v.numpy()  # noqa: E731
        fm.components, fm.centre, fm.mean, fm.scale = (a(state[k]) for k in ("components", "centre", "mean", "scale"))
        fm.weights_sha256 = state["weights_sha256"]
        if fm.weights_sha256 != geoclip_weights_sha256():
            raise LocationWeightsChanged(
                f"the run's location stream was fitted with GeoCLIP weights {fm.weights_sha256[:12]}…, the installed "
                f"ones are {geoclip_weights_sha256()[:12]}…; install geoclip=={GEOCLIP_PIN} or refit the run")
        return fm


__all__ = ["CACHE_LIMIT", "clear_cache", "require_geoclip", "GEOCLIP_DIM", "GEOCLIP_PIN", "LocationEncoderMissing", "LocationFM", "LocationWeightsChanged",
           "geoclip_embeddings", "geoclip_encoder", "geoclip_location_encoder_class", "geoclip_weights_sha256"]
