"""Pydantic models of the YAML run configuration.

Every section forbids unknown keys, so a misspelt key (``k_spatail``) is an error that names the key and the closest
valid spelling instead of a silently ignored setting. :func:`load_config` reads a YAML file; :func:`format_config_error`
turns a :class:`pydantic.ValidationError` into one line a user can act on.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RELATIONS = ("spatial", "spectral", "elevation")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DataConfig(_Section):
    """Where the samples come from and what is predicted.

    Attributes:
        dataset: Named dataset, ``"limesoda:NAME"`` (see ``sptgnn datasets``).
        target: Target column of the loaded samples, e.g. ``"soc_g_kg"`` (SOC in g/kg).
        folds: ``"shipped"`` uses the folds the dataset ships with.
        target_transform: ``"log1p"`` models ``log(1 + y)`` (SOC is right-skewed) and back-transforms with lognormal
            moments; ``"none"`` models ``y`` directly.
    """

    dataset: str = "limesoda:BB.250"
    target: str = "soc_g_kg"
    folds: Literal["shipped"] = "shipped"
    target_transform: Literal["none", "log1p"] = "none"


class GraphConfig(_Section):
    """Relations of the heterogeneous graph and their neighbour counts.

    Attributes:
        relations: Edge types to build, any of ``spatial``, ``spectral``, ``elevation``.
        k_spatial: In-degree of the spatial relation (nearest labelled nodes in metres).
        k_spectral: In-degree of the spectral relation (nearest in standardised imagery space).
        k_elevation: In-degree of the elevation relation.
        elevation_candidates: Spatial candidates among which the ``k_elevation`` closest in elevation are kept.
        spectral_streams: Streams whose standardised features span the spectral relation's space (``imagery``, or
            ``imagery`` and ``environment`` for neighbours in the whole covariate space).
        feature_clip: Clip standardised imagery and environment features to ``±feature_clip`` standard deviations
            (``null``: no clipping). Guards against rare one-hot categories and outliers outside the training range.
    """

    relations: list[Literal["spatial", "spectral", "elevation"]] = Field(default_factory=lambda: list(RELATIONS))
    k_spatial: int = Field(8, ge=1)
    k_spectral: int = Field(8, ge=1)
    k_elevation: int = Field(4, ge=1)
    elevation_candidates: int = Field(16, ge=1)
    spectral_streams: list[Literal["imagery", "environment"]] = Field(default_factory=lambda: ["imagery"], min_length=1)
    feature_clip: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> "GraphConfig":
        if len(set(self.relations)) != len(self.relations):
            raise ValueError(f"graph.relations has duplicates: {self.relations}")
        if self.elevation_candidates < self.k_elevation:
            raise ValueError("graph.elevation_candidates must be >= graph.k_elevation")
        return self


class ModelConfig(_Section):
    """Architecture of one ensemble member (see DESIGN.md, "Model").

    Attributes:
        hidden: Width ``d`` of stream embeddings and hidden node states.
        num_experts: ``E``, number of expert MLPs in the sparse MoE.
        top_k: Experts used per node (``k`` of the noisy top-k router).
        router_noise: Scale of the learned router noise during training (Shazeer et al. 2017).
        num_layers: Number of relational attention layers ``L``.
        heads: Attention heads per relation.
        dropout: Dropout after each layer.
        streams: Streams fed to the MoE (``imagery``, ``environment``, ``position``, ``time``).
        label_inputs: Feed neighbour labels as inputs (masked label prediction, DESIGN.md rule 2).
        label_mask_rate: Share of labelled nodes whose labels are hidden (and scored) each epoch.
        position_frequencies: Random Fourier frequencies of the positional encoding.
        position_scales: Length scales of the positional encoding's frequency bands, in units of the labelled nodes'
            RMS distance from their centroid (so ``1.0`` is about the size of the sampled area).
        var_floor: Lower bound of the predicted variance (standardised target units).
        linear_skip: Add a linear read-out of the standardised imagery and environment features to the predicted mean
            (the "wide" part of wide & deep models, Cheng et al. 2016).
        fusion: How the stream embeddings are fused: ``moe`` (sparse top-k mixture of experts) or ``concat``
            (concatenation and one MLP; the "no MoE" ablation).
    """

    hidden: int = Field(32, ge=4)
    num_experts: int = Field(4, ge=1)
    top_k: int = Field(2, ge=1)
    router_noise: float = Field(1.0, ge=0.0)
    num_layers: int = Field(2, ge=0)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    streams: list[Literal["imagery", "environment", "position", "time"]] = Field(
        default_factory=lambda: ["imagery", "environment", "position", "time"]
    )
    label_inputs: bool = False
    label_mask_rate: float = Field(0.5, gt=0.0, lt=1.0)
    position_frequencies: int = Field(16, ge=1)
    position_scales: list[float] = Field(default_factory=lambda: [1.0, 4.0])
    var_floor: float = Field(1e-4, gt=0.0)
    linear_skip: bool = False
    fusion: Literal["moe", "concat"] = "moe"

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.top_k > self.num_experts:
            raise ValueError(f"model.top_k ({self.top_k}) must be <= model.num_experts ({self.num_experts})")
        if self.hidden % self.heads:
            raise ValueError(f"model.hidden ({self.hidden}) must be divisible by model.heads ({self.heads})")
        return self


class LossConfig(_Section):
    """Training objective.

    Attributes:
        kind: ``gaussian_nll``, ``beta_nll`` (Seitzer et al. 2022) or ``mse_warmup`` (MSE on the mean, then NLL).
        beta: β of the β-NLL.
        warmup_epochs: Epochs of MSE before NLL when ``kind == "mse_warmup"``.
        moran_weight: λ_M, weight of the Moran's I penalty on standardised residuals.
        balance_weight: Weight of the MoE load-balancing loss.
    """

    kind: Literal["gaussian_nll", "beta_nll", "mse_warmup"] = "beta_nll"
    beta: float = Field(0.5, ge=0.0, le=1.0)
    warmup_epochs: int = Field(50, ge=0)
    moran_weight: float = Field(0.1, ge=0.0)
    balance_weight: float = Field(0.01, ge=0.0)


class TrainConfig(_Section):
    """Optimisation of one member and the ensemble.

    Attributes:
        members: ``M``, ensemble size.
        epochs: Maximum epochs (full batch).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: Early-stopping patience in epochs on the validation part.
        val_fraction: Share of the training fold held out (in spatial blocks) for early stopping.
        val_blocks: Number of k-means spatial blocks the training fold is cut into for that hold-out.
        seed: Base seed; member ``m`` uses ``seed + m``.
        monitor: Early-stopping criterion on the validation part: ``rmse`` of the mean or Gaussian ``nll``.
        refit: After early stopping, retrain each member on the whole training fold for the epochs found.
        ema_decay: Decay of the exponential moving average of weights that is validated and kept (0 keeps the raw
            weights).
        label_mask_block_km: With mini-batches and label inputs: seeds are drawn as whole square blocks of this side
            (km), so a seed's label and those of every labelled node in its block are hidden together and the model
            learns from neighbour labels at the distances a spatially blocked test fold has (``null``: seeds drawn one by
            one).
        val_split: How the early-stopping part is held out: ``blocks`` (k-means spatial blocks, ``val_blocks`` of
            them) or ``random`` (a random share, which matches random cross-validation: validation nodes keep near
            labelled neighbours as test nodes do there).
        batch_size: Seed nodes per mini-batch for large graphs: each step trains on a random batch of labelled nodes
            and their ``model.num_layers``-hop in-neighbourhood (:mod:`sptgnn.graph.sampler`); an epoch is one pass
            over the labelled nodes, the EMA is updated per step. The batch's seeds are the nodes whose labels are
            hidden and scored (``model.label_mask_rate`` is then unused). ``null``: full batch, one step per epoch.
    """

    members: int = Field(5, ge=1)
    epochs: int = Field(400, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(1e-2, ge=0.0)
    patience: int = Field(60, ge=1)
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    val_blocks: int = Field(20, ge=2)
    seed: int = 0
    monitor: Literal["rmse", "nll"] = "rmse"
    refit: bool = True
    ema_decay: float = Field(0.95, ge=0.0, lt=1.0)
    batch_size: int | None = Field(None, ge=1)
    val_split: Literal["blocks", "random"] = "blocks"
    label_mask_block_km: float | None = Field(None, gt=0.0)


class EvaluateConfig(_Section):
    """Cross-validation settings.

    Attributes:
        baselines: Baselines trained on the same folds and features.
        moran_k: Neighbours of the kNN weights used for Moran's I of residuals.
        moran_permutations: Permutations of the Moran's I p-value.
        split: Fold scheme: ``shipped`` (the dataset's own folds), ``random`` (random K-fold) or ``blocks`` (spatial
            block K-fold: square blocks of ``block_size_km`` on a metric grid, whole blocks assigned to folds by a
            seeded balanced assignment; see :mod:`sptgnn.data.splits`).
        n_folds: ``K`` of ``random`` and ``blocks``.
        block_size_km: Side of a spatial block in km (``blocks``).
        buffer_km: Buffered leave-block-out: training samples closer than this (km) to any test sample are left out
            of that fold's training set (0: no buffer).
        seed: Seed of the random and block fold assignments.
        regression_kriging_neighbours: Residual points used by the ordinary kriging of the ``regression_kriging``
            baseline at each prediction point (moving-window kriging).
        forest_trees: Trees of the random-forest baselines (``null``: 500).
        forest_max_features: Share of the features tried at each split of the random forests (``null``: all; 0.33 is
            the ``p/3`` of R's randomForest for regression and is much faster on many covariates).
    """

    baselines: list[Literal["xgboost", "random_forest", "xgboost+xy", "random_forest+xy", "regression_kriging"]] = Field(
        default_factory=lambda: ["xgboost", "random_forest", "xgboost+xy"]
    )
    moran_k: int = Field(8, ge=1)
    moran_permutations: int = Field(199, ge=0)
    split: Literal["shipped", "random", "blocks"] = "shipped"
    n_folds: int = Field(5, ge=2)
    block_size_km: float = Field(100.0, gt=0.0)
    buffer_km: float = Field(0.0, ge=0.0)
    seed: int = 0
    regression_kriging_neighbours: int = Field(64, ge=2)
    forest_trees: int | None = Field(None, ge=1)
    forest_max_features: float | None = Field(None, gt=0.0, le=1.0)


class Config(_Section):
    """A whole run configuration: ``data``, ``graph``, ``model``, ``loss``, ``train``, ``evaluate``."""

    data: DataConfig = Field(default_factory=DataConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    def to_yaml(self) -> str:
        """The configuration as YAML text that :func:`load_config` reads back to an equal object."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ConfigError(ValueError):
    """A configuration file that cannot be read or validated; the message says what to change."""


def _valid_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def format_config_error(err: ValidationError, source: str = "config") -> str:
    """One line per problem of a validation error, each naming the key path and, for a typo, the closest key."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            close = difflib.get_close_matches(key, _valid_keys(e["loc"]), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            valid = ", ".join(_valid_keys(e["loc"]))
            lines.append(f"{source}: unknown key '{path}'{hint}; valid keys here: {valid}")
        else:
            lines.append(f"{source}: '{path}': {e['msg']}")
    return "; ".join(lines)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a YAML configuration.

    Args:
        path: YAML file; ``None`` gives the defaults (LimeSoDa BB.250).
        overrides: Nested dict merged over the file's content before validation, e.g. ``{"train": {"members": 2}}``.

    Returns:
        The validated :class:`Config`.

    Raises:
        ConfigError: The file is missing, is not YAML, is not a mapping, or has an unknown key or an invalid value.
    """
    raw: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (give the path of a YAML file, e.g. configs/limesoda_bb250.yaml)")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (data, graph, model, loss, train, evaluate)")
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping")
        raw[section].update(values)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_config_error(exc, source)) from None
