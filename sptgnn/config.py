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

from sptgnn.errors import UserError

RELATIONS = ("spatial", "spectral", "elevation")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class TableConfig(_Section):
    """A point table (CSV, GeoPackage or Parquet) read by :func:`sptgnn.data.tables.load_table` instead of a named dataset.

    The target column is ``data.target``. Relative paths are read under the data directory (``$SPTGNN_DATA_DIR``).

    Attributes:
        path: Table file: ``.csv`` (optionally ``.gz``), ``.gpkg`` (or any OGR vector file) or ``.parquet``.
        layer: Layer of a GeoPackage with several layers.
        x: Column of x or longitude; ``None`` uses the file's point geometry (GeoPackage, GeoParquet).
        y: Column of y or latitude.
        crs: CRS of ``x``/``y`` (e.g. ``EPSG:4326`` for lon/lat); required with ``x``/``y``, overrides the file's CRS.
        id: Column of unique sample identifiers; ``None`` numbers the rows.
        date: Column of sampling dates (parsed with pandas), or ``None``.
        imagery: Table columns of the imagery stream.
        environment: Table columns of the environment stream.
        elevation: Column (of the table or a raster feature) with elevation in metres for the elevation relation.
        units: Unit of the target, kept in the run's metadata (e.g. ``"%"``, ``"g/kg"``).
        drop_missing: Drop rows whose target or a feature is missing (NaN, nodata at the point, off the rasters) and
            report how many; ``False`` makes such rows an error that names them.
        site: Column of site (profile) ids when a site holds several layers: every split keeps a site's layers in one
            fold (:func:`sptgnn.splits.make_folds`), and layers of one site are not duplicated locations.
        sites: A table of sites (path, read as ``path`` is) joined to the layers on ``site``, for horizon tables whose
            coordinates (and site covariates) are kept per site, as NatSoil, WoSIS and AfSP keep them.
        top_cm: Column of each layer's top depth (cm below the surface); with ``bottom_cm``.
        bottom_cm: Column of each layer's bottom depth (cm); list both in ``environment`` to give every model depth as
            a covariate (the SoilGrids recipe).
    """

    path: str
    layer: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str | None = None
    id: str | None = None
    date: str | None = None
    imagery: list[str] = Field(default_factory=list)
    environment: list[str] = Field(default_factory=list)
    elevation: str | None = None
    units: str | None = None
    drop_missing: bool = False
    site: str | None = None
    sites: str | None = None
    top_cm: str | None = None
    bottom_cm: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "TableConfig":
        if (self.x is None) != (self.y is None):
            raise ValueError("data.table: give both x and y columns, or neither to use the file's point geometry")
        if (self.top_cm is None) != (self.bottom_cm is None):
            raise ValueError("data.table: give both top_cm and bottom_cm columns (each layer's depths), or neither")
        if self.sites is not None and self.site is None:
            raise ValueError("data.table.sites is joined on data.table.site: name the site column too")
        return self


class RasterSourceConfig(_Section):
    """Covariate raster(s) sampled at the points and read window by window for maps (:mod:`sptgnn.geo.stack`).

    Attributes:
        path: GeoTIFF path or glob (``vindum/vindum_cov_*.tif``); relative paths are read under the data directory.
        bands: ``{feature: band}``, band a description or a 1-based index; default: every band, named by its
            description, else the file stem (single band), else ``STEM_bN``.
        strip: Prefix removed from automatic band names (``vindum_cov_`` turns ``vindum_cov_ECa`` into ``ECa``).
        stream: Stream the bands feed: ``environment`` (covariates) or ``imagery``.
        resampling: Resampling when the raster is aligned on the first raster's grid: ``nearest`` (categorical
            codes), ``bilinear``, ``cubic`` or ``average``.
    """

    path: str
    bands: dict[str, str | int] | None = None
    strip: str = ""
    stream: Literal["environment", "imagery"] = "environment"
    resampling: Literal["nearest", "bilinear", "cubic", "average"] = "nearest"


class ContextConfig(_Section):
    """Multi-scale context features (:mod:`sptgnn.data.context`): window statistics of covariate bands around each
    sample and pixel, added to the environment stream of every model (members and baselines alike).

    Attributes:
        scales_km: Window sides in km, e.g. ``[60, 140, 300]`` (odd pixel counts on the covariate grid).
        stats: ``mean`` and/or ``sd`` over the window's valid pixels.
        bands: Bands to summarise; default every band of the covariate rasters (for ``afsp-africa``, its continuous
            bands).
    """

    scales_km: list[float] = Field(min_length=1)
    stats: list[Literal["mean", "sd"]] = Field(default_factory=lambda: ["mean"], min_length=1)
    bands: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ContextConfig":
        if any(s <= 0 for s in self.scales_km):
            raise ValueError(f"data.context.scales_km {self.scales_km}: every scale must be positive (km)")
        return self


class DataConfig(_Section):
    """Where the samples come from and what is predicted.

    Attributes:
        dataset: Named dataset, ``"limesoda:NAME"`` (see ``sptgnn datasets``); ignored when ``table`` is set.
        target: Target column of the loaded samples, e.g. ``"soc_g_kg"`` (SOC in g/kg).
        folds: ``"shipped"`` uses the folds the dataset ships with.
        target_transform: ``"log1p"`` models ``log(1 + y)`` (SOC is right-skewed) and back-transforms with lognormal
            moments; ``"none"`` models ``y`` directly.
        table: A point table to read instead of ``dataset`` (see :class:`TableConfig`).
        context: Multi-scale context features from the covariate rasters (or ``afsp-africa``'s grid), see
            :class:`ContextConfig`.
        rasters: Covariate rasters sampled at the table's points; their bands join the streams (see
            :class:`RasterSourceConfig`) and ``sptgnn predict --raster`` maps them.
        duplicates: Samples of a table that share a location: ``keep`` them as separate samples (with a warning),
            ``mean`` them into one sample (numeric columns averaged, the first id kept, with a warning) or make them an
            ``error``.
        targets: Multi-task learning: every target the network predicts, the first the primary (``target`` is set to
            it), e.g. ``[soc_g_kg, ph, clay_percent]``. Each further (auxiliary) target gets its own heteroscedastic
            head over the shared streams, MoE and attention, is standardised on its own (no ``target_transform``) and
            is masked at samples where it is missing (NaN). ``None``: one target.
        quantity: What the primary target measures: ``soc`` (soil organic carbon), ``som`` (soil organic matter, not
            SOC) or ``other``; ``None`` infers it from the target's name (``soc…`` → ``soc``, ``som…``/``om`` →
            ``som``). With the target's units (``data.table.units`` or the dataset's) it decides whether
            ``sptgnn aggregate`` may compute stocks, and with which stated conversion.
        top_cm: Top of the sampled layer (cm below the surface, e.g. 0), recorded with the run; with ``bottom_cm``
            ``sptgnn aggregate`` takes the layer's thickness for stocks unless ``--depth-cm`` is given.
        bottom_cm: Bottom of the sampled layer (cm, e.g. 10 for 0–10 cm samples).
    """

    dataset: str = "limesoda:BB.250"
    target: str = "soc_g_kg"
    folds: Literal["shipped"] = "shipped"
    target_transform: Literal["none", "log1p"] = "none"
    table: TableConfig | None = None
    rasters: list[RasterSourceConfig] = Field(default_factory=list)
    context: ContextConfig | None = None
    duplicates: Literal["keep", "mean", "error"] = "keep"
    targets: list[str] | None = Field(None, min_length=1)
    quantity: Literal["soc", "som", "other"] | None = None
    top_cm: float | None = Field(None, ge=0)
    bottom_cm: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_layer(self) -> "DataConfig":
        if (self.top_cm is None) != (self.bottom_cm is None):
            raise ValueError("data.top_cm and data.bottom_cm: give both (the sampled layer, e.g. 0 and 10) or neither")
        if self.top_cm is not None and self.bottom_cm <= self.top_cm:
            raise ValueError(f"data.bottom_cm {self.bottom_cm} must lie below data.top_cm {self.top_cm} (cm)")
        return self

    @model_validator(mode="after")
    def _check_targets(self) -> "DataConfig":
        if self.targets is None:
            return self
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"data.targets has duplicates: {self.targets}")
        if "target" in self.model_fields_set and self.target != self.targets[0]:
            raise ValueError(f"data.target '{self.target}' differs from the first of data.targets {self.targets}; "
                             "the first of data.targets is the primary target: drop data.target or make them agree")
        self.target = self.targets[0]
        return self

    @property
    def source(self) -> str:
        """What the samples are read from: ``table:<path>`` when ``table`` is set (``dataset`` is then ignored), else
        the named ``dataset``."""
        return f"table:{self.table.path}" if self.table is not None else self.dataset

    @property
    def aux_targets(self) -> list[str]:
        """The auxiliary targets of multi-task learning (``targets`` after the first), possibly empty."""
        return list(self.targets[1:]) if self.targets else []


class GraphConfig(_Section):
    """Relations of the heterogeneous graph and their neighbour counts.

    Attributes:
        relations: Edge types to build, any of ``spatial``, ``spectral``, ``elevation``.
        k_spatial: In-degree of the spatial relation (nearest labelled nodes in metres).
        k_spectral: In-degree of the spectral relation (nearest in standardised imagery space).
        k_elevation: In-degree of the elevation relation.
        elevation_candidates: Spatial candidates among which the ``k_elevation`` closest in elevation are kept.
        spectral_streams: Streams whose standardised features span the spectral relation's space (``imagery``, or
            ``imagery`` and ``environment`` for neighbours in the whole covariate space). With chip features
            (``imagery.encoder``) the imagery stream is the chip embedding.
        spectral_features: A named subset of feature columns for the spectral relation instead (``None``: the streams).
        feature_clip: Clip standardised imagery and environment features to ``±feature_clip`` standard deviations
            (``null``: no clipping). Guards against rare one-hot categories and outliers outside the training range.
        depth_scale_m: For profile layers (samples with depths, ``data.table.top_cm``/``bottom_cm``): metres of
            horizontal distance that one cm of depth weighs in the spatial and elevation relations (each layer's mid
            depth times this joins its coordinates), so a layer's neighbours are layers of nearby profiles at similar
            depths; e.g. ``100``: 10 cm of depth weighs as 1 km. ``None``: depth is no coordinate. Whatever it is, a
            layer is never the neighbour of a layer of its own site (``data.table.site``).
        spectral_eps: ``0``: exact spectral neighbours; ``> 0``: (1+eps)-approximate ones (scipy's k-d tree search,
            each returned distance within ``1 + eps`` of the true one), for very large graphs; ``0.5`` kept 97.0 % of
            the exact neighbours at 1M nodes in 5-D (``scripts/benchmark_scale.py``, part ``graph``).
    """

    relations: list[Literal["spatial", "spectral", "elevation"]] = Field(default_factory=lambda: list(RELATIONS))
    k_spatial: int = Field(8, ge=1)
    k_spectral: int = Field(8, ge=1)
    k_elevation: int = Field(4, ge=1)
    elevation_candidates: int = Field(16, ge=1)
    spectral_streams: list[Literal["imagery", "environment"]] = Field(default_factory=lambda: ["imagery"], min_length=1)
    spectral_features: list[str] | None = Field(
        None, min_length=1,
        description="Named subset of the streams' feature columns (e.g. imagery chip features 'rcf_000' or band columns) "
                    "spanning the spectral relation's space instead of whole streams; None uses graph.spectral_streams.",
    )
    depth_scale_m: float | None = Field(None, gt=0.0)
    feature_clip: float | None = Field(None, gt=0.0)
    spectral_eps: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> "GraphConfig":
        if len(set(self.relations)) != len(self.relations):
            raise ValueError(f"graph.relations has duplicates: {self.relations}")
        if self.elevation_candidates < self.k_elevation:
            raise ValueError("graph.elevation_candidates must be >= graph.k_elevation")
        return self


class LocationFMConfig(_Section):
    """The location foundation-model stream (``location_fm`` in ``model.streams``; :mod:`sptgnn.imagery.location`).

    Attributes:
        encoder: ``geoclip``: GeoCLIP's pre-trained location encoder (Vivanco Cepeda et al. 2023), frozen; its weights
            ship in the ``geoclip`` wheel (``pip install --no-deps geoclip==1.3.0``), so it runs offline.
        dims: Principal components of the 512-d embeddings kept by ``projection: pca``.
        projection: ``pca``: principal components fitted on the labelled samples' embeddings (label-free);
            ``learned``: the whole embedding, projected by the stream's encoder MLP.
        finetune_lr_scale: Learning rate of the location encoder as a share of ``train.lr``; ``0`` (default) keeps it
            frozen, its embeddings computed once. Above 0 every member fine-tunes its own copy (9.4 M parameters, slow
            on a CPU) from each node's latitude and longitude; needs ``projection: learned``.
    """

    encoder: Literal["geoclip"] = "geoclip"
    dims: int = Field(16, ge=1, le=512)
    projection: Literal["pca", "learned"] = "pca"
    finetune_lr_scale: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> "LocationFMConfig":
        if self.finetune_lr_scale > 0 and self.projection != "learned":
            raise ValueError("model.location_fm.finetune_lr_scale > 0 fine-tunes the encoder, whose output a PCA "
                             "fitted before training cannot follow: set model.location_fm.projection: learned")
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
        streams: Streams fed to the MoE (``imagery``, ``environment``, ``position``, ``time``, and ``location_fm``: a
            pre-trained location encoder's embedding of each node's coordinates, see ``location_fm``).
        location_fm: The location foundation-model stream's encoder and projection.
        label_inputs: Feed neighbour labels as inputs (masked label prediction, DESIGN.md rule 2).
        label_mask_rate: Share of labelled nodes whose labels are hidden (and scored) each epoch.
        position_frequencies: Random Fourier frequencies of the positional encoding.
        position_scales: Length scales of the positional encoding's frequency bands, in units of the labelled nodes'
            RMS distance from their centroid (so ``1.0`` is about the size of the sampled area).
        var_floor: Lower bound of the predicted variance (standardised target units).
        linear_skip: Add a linear read-out of the standardised imagery and environment features to the predicted mean
            (the "wide" part of wide & deep models, Cheng et al. 2016).
        teacher_input: Feed the teacher's features (``trend``; ignored without one) to the members as an input: its
            prediction and, for ``kpr_random_forest``, the ordinary-kriging prediction and kriging sd of the target at
            the node (kriging-prior inputs, Schmidinger et al. 2026). A training sample's features are out-of-fold, so
            they never depend on its own label; a query's come from the teacher fitted on the whole training fold.
        trend: ``random_forest``: the members model the residual of a random-forest trend on the covariates, as
            regression kriging does with kriging (see :mod:`sptgnn.train.trend`); ``kpr_random_forest``: the trend
            forest also reads cross-fitted ordinary-kriging predictions of the target (kriging-prior regression);
            ``xgboost``: gradient-boosted trees on the covariates (the ``xgboost`` baseline's settings);
            ``none``: they model the target;
            ``auto``: use the trend only when its out-of-fold R² on the training samples reaches ``trend_min_r2``
            (decided per fit, from training data only).
        trend_split: Inner folds of the trend's out-of-fold values, which the members learn the residual of:
            ``random`` (K-fold), ``blocks`` (k-means spatial blocks, ``train.val_blocks`` of them, in 5 parts), so the
            out-of-fold trend errs as it does in unsampled places; ``auto``: as ``train.val_split``. A calibration
            twin refits the trend without its calibration part either way.
        trend_trees: Trees of the trend's random forest.
        trend_min_r2: Out-of-fold R² of the trend (training samples, standardised target) from which ``auto`` uses it.
        trend_candidates: The teachers ``auto`` fits; it keeps the one with the best out-of-fold R² on the training
            samples (an inner cross-validation inside each training fold, never the test fold).
        fusion: How the stream embeddings are fused: ``moe`` (sparse top-k mixture of experts) or ``concat``
            (concatenation and one MLP; the "no MoE" ablation).
        gating: The MoE router: ``topk_softmax`` (noisy top-k softmax, Shazeer et al. 2017) or ``dirichlet``
            (Dirichlet prior-aware gating: concentrations ``α₀ + evidence``, the gate is the posterior mean kept top-k
            sparse, with a KL term to the symmetric prior weighted by ``loss.dirichlet_weight``).
        dirichlet_prior: Concentration ``α₀`` of the symmetric Dirichlet prior of ``dirichlet`` gating.
        pretrained: Folder written by ``sptgnn pretrain``: its imagery / environment encoders initialise every member
            (a strict key and shape check; the error names the keys), and those streams are standardised with the
            statistics of the pre-training cells (label-free, so honest in any cross-validation).
        pretrained_lr_scale: Learning rate of the pre-trained encoders as a share of ``train.lr``; ``0`` freezes them.
    """

    hidden: int = Field(32, ge=4)
    num_experts: int = Field(4, ge=1)
    top_k: int = Field(2, ge=1)
    router_noise: float = Field(1.0, ge=0.0)
    num_layers: int = Field(2, ge=0)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    streams: list[Literal["imagery", "environment", "position", "time", "location_fm"]] = Field(
        default_factory=lambda: ["imagery", "environment", "position", "time"]
    )
    location_fm: LocationFMConfig = Field(default_factory=LocationFMConfig)
    label_inputs: bool = False
    label_mask_rate: float = Field(0.5, gt=0.0, lt=1.0)
    position_frequencies: int = Field(16, ge=1)
    position_scales: list[float] = Field(default_factory=lambda: [1.0, 4.0])
    var_floor: float = Field(1e-4, gt=0.0)
    linear_skip: bool = False
    teacher_input: bool = False
    trend: Literal["none", "random_forest", "kpr_random_forest", "xgboost", "auto"] = "none"
    trend_split: Literal["random", "blocks", "auto"] = "random"
    trend_trees: int = Field(300, ge=1)
    trend_min_r2: float = Field(0.75, le=1.0)
    trend_candidates: list[Literal["random_forest", "kpr_random_forest", "xgboost"]] = Field(
        default_factory=lambda: ["random_forest"], min_length=1)
    fusion: Literal["moe", "concat"] = "moe"
    gating: Literal["topk_softmax", "dirichlet"] = "topk_softmax"
    dirichlet_prior: float = Field(1.0, gt=0.0)
    pretrained: str | None = None
    pretrained_lr_scale: float = Field(0.1, ge=0.0)

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
        dirichlet_weight: Weight of the Dirichlet router's KL to its prior (``model.gating: dirichlet``).
        teacher_weight: Weight of the soft-target term ``mean((μ_student − μ_teacher)²)`` (standardised units) over the
            nodes of each step. The teacher is the trend (``model.trend``: the members' output is the residual from
            it), or the training mean where no trend is used; the term shrinks the members towards their teacher where
            a few labels cannot support a large correction (soft targets, Hinton et al. 2015). 0: off.
        teacher_anneal_epochs: Anneal the soft-target weight linearly from ``teacher_weight`` to 0 over this many
            epochs (the pull matters most early, before the members have learnt from the labels); ``None``: constant.
        task_weighting: How the auxiliary targets' losses (``data.targets``) join the primary's: ``fixed``
            (``task_weights``) or ``uncertainty``, learned homoscedastic weights (Kendall, Gal & Cipolla 2018, eq. 7) of
            the auxiliary targets, the primary keeping weight 1 (see :func:`sptgnn.losses.multitask_loss`).
        task_weights: Fixed weight of each auxiliary target's loss, in ``data.targets`` order after the primary
            (``None``: 1 each).
    """

    kind: Literal["gaussian_nll", "beta_nll", "mse_warmup"] = "beta_nll"
    beta: float = Field(0.5, ge=0.0, le=1.0)
    warmup_epochs: int = Field(50, ge=0)
    moran_weight: float = Field(0.1, ge=0.0)
    balance_weight: float = Field(0.01, ge=0.0)
    dirichlet_weight: float = Field(0.01, ge=0.0)
    teacher_weight: float = Field(0.0, ge=0.0)
    teacher_anneal_epochs: int | None = Field(None, ge=1)
    task_weighting: Literal["fixed", "uncertainty"] = "fixed"
    task_weights: list[float] | None = Field(None, min_length=1)


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
        fanout: With mini-batches: at most ``fanout[h]`` sampled in-edges per relation per node at hop ``h`` (one value
            per attention layer, GraphSAGE's neighbour sampling), so a step's cost is bounded whatever the graph's size;
            ``null``: every in-edge. Validation and prediction always use every in-edge.
        bound_heap: With mini-batches: fix the C allocator's mmap threshold (:func:`sptgnn.memory.bound_heap`) so that
            resident memory stays flat over epochs instead of growing with heap fragmentation; the steps then run about
            2× slower (every large tensor is mapped afresh), so it is for long runs on large graphs near the memory
            limit.
        threads: CPU threads of torch, BLAS and the tree baselines (:mod:`sptgnn.threads`); ``null``: ``$SPTGNN_THREADS``,
            ``$OMP_NUM_THREADS``, else 1 below 50,000 labelled nodes and every available core above.
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
    fanout: list[int] | None = Field(None, min_length=1)
    bound_heap: bool = False
    threads: int | None = Field(None, ge=1)


class KNNDMConfig(_Section):
    """kNNDM folds (``evaluate.split: knndm``; Linnenbrink et al. 2024, ``CAST::knndm``; :mod:`sptgnn.splits.knndm`).

    Attributes:
        domain: The prediction area: a raster (its valid cells) or a GeoPackage/shapefile of polygons; relative paths
            are read under the data directory.
        space: ``geographical`` (distances in metres) or ``feature`` (standardised covariates; needs a raster domain
            whose band names are covariates of the samples).
        samplesize: Prediction points sampled regularly from the domain.
        maxp: Largest share of the samples one fold may hold.
        clustering: ``hierarchical`` (Ward; memory grows with the square of the samples, fine to about 10,000) or
            ``kmeans``.
    """

    domain: str
    space: Literal["geographical", "feature"] = "geographical"
    samplesize: int = Field(1000, ge=10)
    maxp: float = Field(0.5, gt=0.0, le=1.0)
    clustering: Literal["hierarchical", "kmeans"] = "hierarchical"


class EvaluateConfig(_Section):
    """Cross-validation settings.

    Attributes:
        baselines: Baselines trained on the same folds and features; ``qrf`` (quantile regression forest) and
            ``xgboost_quantile`` (XGBoost, quantile loss) predict quantiles 0.025 … 0.975 and are scored as distributions;
            ``kpr_random_forest`` is a random forest on the covariates plus cross-fitted ordinary-kriging predictions of
            the target (kriging-prior regression, Schmidinger et al. 2026); ``+fm`` variants add the location
            foundation-model features (``model.location_fm``: GeoCLIP embeddings, PCA fitted on the training fold);
            ``realmlp`` and ``tabm`` are the deep tabular learners RealMLP (Holzmüller et al. 2024) and TabM
            (Gorishniy et al. 2025) with their default settings, through ``pytabkit`` (``pip install sptgnn[tabular]``).
        moran_k: Neighbours of the kNN weights used for Moran's I of residuals.
        moran_permutations: Permutations of the Moran's I p-value.
        split: Fold scheme: ``shipped`` (the dataset's own folds), ``random`` (random K-fold) or ``blocks`` (spatial
            block K-fold: square blocks of ``block_size_km`` on a metric grid, whole blocks assigned to folds by a
            seeded balanced assignment; see :mod:`sptgnn.splits`) or ``knndm`` (folds whose test-to-training
            nearest-neighbour distances match those from the prediction area, ``evaluate.knndm``).
        n_folds: ``K`` of ``random``, ``blocks`` and ``knndm``.
        block_size_km: Side of a spatial block in km (``blocks``).
        buffer_km: Buffered leave-block-out: training samples closer than this (km) to any test sample are left out
            of that fold's training set (0: no buffer).
        seed: Seed of the random and block fold assignments.
        regression_kriging_neighbours: Points used by the ordinary kriging of the ``regression_kriging`` and
            ``kpr_random_forest`` baselines at each prediction point (moving-window kriging).
        forest_trees: Trees of the random-forest baselines (``null``: 500).
        forest_max_features: Share of the features tried at each split of the random forests (``null``: all; 0.33 is
            the ``p/3`` of R's randomForest for regression and is much faster on many covariates).
        knndm: The prediction domain and settings of ``split: knndm``.
    """

    baselines: list[Literal["xgboost", "random_forest", "xgboost+xy", "random_forest+xy", "regression_kriging", "qrf",
                            "xgboost_quantile", "qrf+xy", "xgboost_quantile+xy", "kpr_random_forest", "xgboost+fm",
                            "random_forest+fm", "qrf+fm", "xgboost_quantile+fm", "realmlp", "tabm", "realmlp+fm",
                            "tabm+fm"]] = Field(
        default_factory=lambda: ["xgboost", "random_forest", "xgboost+xy"]
    )
    moran_k: int = Field(8, ge=1)
    moran_permutations: int = Field(199, ge=0)
    split: Literal["shipped", "random", "blocks", "knndm"] = "shipped"
    n_folds: int = Field(5, ge=2)
    block_size_km: float = Field(100.0, gt=0.0)
    buffer_km: float = Field(0.0, ge=0.0)
    seed: int = 0
    regression_kriging_neighbours: int = Field(64, ge=2)
    forest_trees: int | None = Field(None, ge=1)
    forest_max_features: float | None = Field(None, gt=0.0, le=1.0)
    knndm: KNNDMConfig | None = None

    @model_validator(mode="after")
    def _check_knndm(self) -> "EvaluateConfig":
        if self.split == "knndm" and self.knndm is None:
            raise ValueError("evaluate.split: knndm needs evaluate.knndm.domain (a raster or polygons of the prediction "
                             "area)")
        return self


class ChipSourceConfig(_Section):
    """One GeoTIFF stack of the imagery stream (see :class:`sptgnn.data.chips.ChipSource`).

    Attributes:
        path: GeoTIFF; absolute, relative to the working directory, or relative to the data directory (``SPTGNN_DATA_DIR``).
        bands: Band names (band descriptions) to read; ``None`` reads all. For a multi-date stack: the channels of one date.
        name: Channel-name prefix (default: file stem); channels are ``"{name}:{band}"``.
        dates: Multi-date stack: ``"descriptions"`` (band descriptions are dates) or a timestamps file (one date a line).
        kind: ``data``, or ``cloud_mask`` (non-zero = cloudy; masks the multi-date channels of the same date).
        resampling: Resampling when the source is reprojected to the common grid.
    """

    path: str
    bands: list[str] | None = None
    name: str | None = None
    dates: str | None = None
    kind: Literal["data", "cloud_mask"] = "data"
    resampling: Literal["nearest", "bilinear", "cubic", "average"] = "bilinear"


class RandomConvConfig(_Section):
    """Random convolutional features (MOSAIKS, Rolf et al. 2021): ``2 × num_filters`` weight-free features.

    Attributes:
        num_filters: Filters drawn from the labelled chips' patches (features: twice this).
        patch_size: Filter size in pixels.
        bias: ReLU bias of the features.
        whiten: ZCA-whiten patches and filters.
        seed: Seed of the patch and filter draws.
    """

    num_filters: int = Field(64, ge=1)
    patch_size: int = Field(3, ge=1)
    bias: float = 1.0
    whiten: bool = True
    seed: int = 0


class SeriesConfig(_Section):
    """Temporal encoder of multi-date chips (:class:`sptgnn.imagery.series.SeriesEncoder`).

    Attributes:
        per_date: Single-date encoder applied per date: ``random_conv`` (with ``imagery.random_conv``) or ``stats``.
        pooling: ``harmonic`` (harmonic-regression coefficients over the dates' day of year) or ``mean``.
        harmonics: Harmonics of the annual cycle.
        min_valid: Share of valid pixels a date needs to count for a sample (clouds, gaps).
    """

    per_date: Literal["random_conv", "stats"] = "random_conv"
    pooling: Literal["harmonic", "mean"] = "harmonic"
    harmonics: int = Field(1, ge=0)
    min_valid: float = Field(0.5, gt=0.0, le=1.0)


class TerraMindConfig(_Section):
    """TerraMind backbone via terratorch (optional extra ``sptgnn[terramind]``; local weights only).

    Attributes:
        backbone: ``terramind_v1_tiny``, ``terramind_v1_small``, ``terramind_v1_base`` or ``terramind_v1_large``.
        ckpt_path: Local checkpoint file of that backbone.
        modalities: Chip channels per modality in TerraMind's band order, e.g. ``{"S2L2A": ["s2:B01", …, "s2:B12"],
            "S1GRD": ["s1:VV", "s1:VH"], "DEM": ["dem:DEM"]}``.
        finetune: Fine-tune the backbone with its own learning rate ``lr``. Only the frozen backbone is wired into
            training so far (features computed once per fold), so ``true`` is refused.
        lr: Learning rate of the backbone when fine-tuned.
        batch_size: Chips per backbone call.
    """

    backbone: Literal["terramind_v1_tiny", "terramind_v1_small", "terramind_v1_base", "terramind_v1_large"] = "terramind_v1_base"
    ckpt_path: str | None = None
    modalities: dict[str, list[str]] = Field(default_factory=dict)
    finetune: bool = False
    lr: float = Field(1e-5, gt=0.0)
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "TerraMindConfig":
        if self.finetune:
            raise ValueError("imagery.terramind.finetune: fine-tuning inside SpTGNN training is not implemented yet; "
                             "use the frozen backbone (finetune: false)")
        return self


class ImageryConfig(_Section):
    """The imagery stream: which features and, for chips, which rasters, chip size, encoder and cache.

    Attributes:
        encoder: ``columns`` (default: the samples' own imagery columns, e.g. LimeSoDa's Sentinel-2 values at the
            points); chip encoders fitted on each fold's labelled chips: ``point`` (band values at the sample's pixel),
            ``stats`` (per-channel mean/sd/centre), ``random_conv`` (MOSAIKS random convolutional features, the offline
            default for chips), ``series`` (multi-date chips), ``terramind`` (optional foundation model).
        sources: GeoTIFF stacks chips are cut from (needed by every chip encoder).
        bands: Channels (``"{source}:{band}"``) the encoder uses, in order; ``None`` uses all.
        chip_size: Chip height and width in pixels of the common grid.
        crs: CRS of the common grid (default: the first source's).
        resolution: Pixel size of the common grid in CRS units (default: the first source's).
        cache_dir: On-disk chip cache folder (``None``: no cache).
        keep_columns: Also keep the samples' own imagery columns next to the chip features ("both").
        random_conv: Settings of ``random_conv`` (also the per-date encoder of ``series``).
        series: Settings of ``series``.
        terramind: Settings of ``terramind``.
    """

    encoder: Literal["columns", "point", "stats", "random_conv", "series", "terramind"] = "columns"
    sources: list[ChipSourceConfig] = Field(default_factory=list)
    bands: list[str] | None = None
    chip_size: int = Field(9, ge=1)
    crs: str | None = None
    resolution: float | None = Field(None, gt=0.0)
    cache_dir: str | None = None
    keep_columns: bool = False
    random_conv: RandomConvConfig = Field(default_factory=RandomConvConfig)
    series: SeriesConfig = Field(default_factory=SeriesConfig)
    terramind: TerraMindConfig = Field(default_factory=TerraMindConfig)

    @model_validator(mode="after")
    def _check(self) -> "ImageryConfig":
        if self.encoder != "columns" and not any(s.kind == "data" for s in self.sources):
            raise ValueError(f"imagery.encoder '{self.encoder}' cuts chips: give imagery.sources (GeoTIFF paths)")
        return self


class CalibrationConfig(_Section):
    """Post-hoc recalibration of the ensemble (see :mod:`sptgnn.distributions.calibration`).

    Attributes:
        method: ``auto`` (the default: cross-fits ``variance``, ``isotonic_central`` and ``isotonic`` on the calibration
            part and keeps the one that lowers its held-out calibration error without raising its CRPS by more than
            1 %, else none; the choice and the scores are recorded, see
            :meth:`~sptgnn.distributions.calibration.Calibrator.select`; too few samples for a calibration part: no
            calibration, said in the record), ``none`` (no calibration part is held out; members train as without
            this section), ``variance``
            (one sd factor by NLL), ``isotonic`` (Kuleshov et al. 2018 recalibration of the predictive CDF),
            ``isotonic_central`` (the same on central intervals, symmetric about the median) or ``conformal``
            (split-conformal central intervals).
        fraction: Share of the training fold held out in spatial blocks (k-means blocks, ``train.val_blocks`` of them)
            as the calibration part. Members are first trained without it and predict it; with ``train.refit`` they
            are then refitted on the whole fold, as without calibration.
        min_samples: Fewest samples the calibration part may have; fewer is an error.
        blocks: Number of k-means spatial blocks the training fold is cut into for the calibration part (``None``:
            ``train.val_blocks``). Few large blocks calibrate for spatial extrapolation (spatial-block test folds);
            many small blocks (up to half the samples) approach a random calibration part, matching random test folds.
        split: How the calibration part(s) are drawn, to mirror the test folds: ``blocks`` (k-means spatial blocks,
            see ``blocks``) for spatially blocked test folds, ``random`` (samples drawn at random, seeded) for random
            test folds of clustered data, where even small k-means blocks take whole clusters away from the twins and
            leave the intervals too wide (Africa random folds: calibration error 0.036 before, 0.075 after).
        folds: ``1``: one calibration part of ``fraction`` of the fold. ``K >= 2``: cross-fitted calibration: the fold
            is cut into ``K`` spatially blocked parts (``blocks`` k-means blocks, balanced) and each part is predicted
            by twins trained on the other ``K − 1``, so the calibrator is fitted on every sample of the fold
            (``fraction`` is then unused). ``K`` times the twin training; for small datasets, where one part of
            ``fraction`` leaves few samples to fit the calibrator on.
    """

    method: Literal["auto", "none", "variance", "isotonic", "isotonic_central", "conformal"] = "auto"
    fraction: float = Field(0.2, gt=0.0, lt=0.5)
    min_samples: int = Field(20, ge=2)
    blocks: int | None = Field(None, ge=2)
    split: Literal["blocks", "random"] = "blocks"
    folds: int = Field(1, ge=1, le=20)


class StudentConfig(_Section):
    """A fast student distilled from the ensemble (Hinton et al. 2015; ensemble → small network as in AK-KD,
    Dai et al. 2025), which maps use when asked (``sptgnn predict --student``).

    The student is one SpTGNN of width ``hidden`` with ``num_layers`` attention layers and ``num_experts`` experts on the
    ensemble's graph, trained to give the ensemble's predictive mixture at every labelled node: its mean, its aleatoric
    variance and, from a second head, its epistemic variance (see :mod:`sptgnn.train.student`).

    Attributes:
        enabled: Distil a student after the ensemble is fitted.
        hidden: Width of the student's hidden states.
        num_layers: Its relational attention layers.
        num_experts: Its MoE experts (``top_k`` 1).
        heads: Its attention heads (must divide ``hidden``).
        epochs: Full-batch distillation epochs.
        lr: AdamW learning rate.
    """

    enabled: bool = False
    hidden: int = Field(16, ge=4)
    num_layers: int = Field(1, ge=0)
    num_experts: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    epochs: int = Field(400, ge=1)
    lr: float = Field(0.005, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> "StudentConfig":
        if self.hidden % self.heads:
            raise ValueError(f"student.hidden ({self.hidden}) must be divisible by student.heads ({self.heads})")
        return self


class SelectionConfig(_Section):
    """Choices selected per training fold by an inner cross-validation of the training samples only (never the test
    fold), as the published LimeSoDa benchmark tunes its baselines by nested cross-validation.

    Attributes:
        candidates: Config overrides, one per candidate, e.g. ``[{}, {model: {teacher_input: true}},
            {model: {trend: none}, loss: {teacher_weight: 0}}, {data: {targets: [soc_g_kg, ph, clay_percent]}}]``
            (teacher on/off, multi-task on/off, width, members …). Fewer than two: no selection.
        folds: ``K`` of the inner K-fold (random, seeded by ``train.seed``).
        metric: ``r2`` (pooled R² of the mean, inner fits without calibration) or ``crps`` (mean CRPS, calibrated as
            configured). Ties keep the earlier candidate.
    """

    candidates: list[dict[str, dict]] = Field(default_factory=list)
    folds: int = Field(3, ge=2, le=10)
    metric: Literal["r2", "crps"] = "r2"

    @model_validator(mode="after")
    def _check(self) -> "SelectionConfig":
        for i, cand in enumerate(self.candidates):
            bad = sorted(set(cand) & {"selection", "evaluate"})
            if bad:
                raise ValueError(f"selection.candidates[{i}] overrides {bad}; a candidate may change the model, its "
                                 "training and its targets, not the evaluation or the selection itself")
        return self


class PretrainConfig(_Section):
    """Masked-reconstruction pre-training of the stream encoders on unlabelled cells (``sptgnn pretrain``; STCLN: Qin
    et al. 2025, Int. J. Appl. Earth Obs. Geoinf. 137, 104426).

    Attributes:
        max_cells: Pre-train on a seeded sample of at most this many valid cells (``None``: all of them).
        epochs: Passes over the cells.
        batch_size: Cells whose reconstruction is scored per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        band_mask_ratio: Share of (cell, feature) values hidden at random.
        neighbourhood_mask_ratio: Share of cells hidden as whole neighbourhoods (a centre and its ``mask_neighbours``
            nearest cells, every feature), reconstructed from the cells around them.
        mask_neighbours: Cells besides the centre in a hidden neighbourhood.
        context_k: Nearest cells whose mean state is each cell's context.
        validation_fraction: Share of cells held out to report the reconstruction RMSE (standardised units).
        seed: Seed of the cell sample, the masks, the initialisation and the batches.
    """

    max_cells: int | None = Field(200_000, ge=100)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(1024, ge=16)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    band_mask_ratio: float = Field(0.3, ge=0.0, lt=1.0)
    neighbourhood_mask_ratio: float = Field(0.15, ge=0.0, lt=1.0)
    mask_neighbours: int = Field(4, ge=1)
    context_k: int = Field(8, ge=1)
    validation_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "PretrainConfig":
        if self.band_mask_ratio == 0 and self.neighbourhood_mask_ratio == 0:
            raise ValueError("pretrain: band_mask_ratio and neighbourhood_mask_ratio are both 0, so nothing is hidden")
        return self


class RayConfig(_Section):
    """Where ``--backend ray`` runs its tasks (:mod:`sptgnn.parallel`; the command line's ``--ray-address`` wins).

    Attributes:
        address: Head of an existing Ray cluster (``auto``, ``ray://host:10001``, ``host:6379``); ``null`` starts a
            local Ray instance on this machine.
        num_cpus: CPUs a local instance may use (``null``: every core); ignored when joining a cluster.
    """

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)


class Config(_Section):
    """A whole run configuration: ``data``, ``graph``, ``model``, ``loss``, ``train``, ``evaluate``, ``imagery``,
    ``calibration``, ``student``, ``selection``, ``ray``."""

    data: DataConfig = Field(default_factory=DataConfig)
    graph: GraphConfig = Field(default_factory=GraphConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    imagery: ImageryConfig = Field(default_factory=ImageryConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="after")
    def _check_tasks(self) -> "Config":
        weights, aux = self.loss.task_weights, self.data.aux_targets
        if weights is not None and len(weights) != len(aux):
            raise ValueError(f"loss.task_weights has {len(weights)} weight(s) but data.targets has {len(aux)} auxiliary "
                             f"target(s) {aux}: give one weight per target after the first")
        fanout = self.train.fanout
        if fanout is not None and (len(fanout) != self.model.num_layers or min(fanout) < 1):
            raise ValueError(f"train.fanout {fanout} needs one value >= 1 per attention layer (model.num_layers = "
                             f"{self.model.num_layers})")
        for i, cand in enumerate(self.selection.candidates):
            unknown = [name for name in cand if name not in Config.model_fields]
            if unknown:
                raise ValueError(f"selection.candidates[{i}]: unknown section '{unknown[0]}'")
            try:  # the candidate exactly as estimator.selection will apply it
                self.updated(selection={"candidates": []}, **cand)
            except ValidationError as exc:
                raise ValueError(f"selection.candidates[{i}] is not a valid override: {exc.errors()[0]['msg']} at "
                                 f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}") from None
        return self

    def to_yaml(self) -> str:
        """The configuration as YAML text that :func:`load_config` reads back to an equal object. A table's config
        does not write ``data.dataset`` (ignored beside ``data.table``), so the saved config names only its table."""
        raw = self.model_dump(mode="json")
        if self.data.table is not None and raw["data"]["dataset"] == DataConfig.model_fields["dataset"].default:
            del raw["data"]["dataset"]
        return yaml.safe_dump(raw, sort_keys=False)

    def updated(self, **sections: dict) -> "Config":
        """A validated copy with some fields of some sections replaced, e.g. ``updated(model={"fusion": "concat"})``.

        Raises:
            pydantic.ValidationError: A value the section does not accept (an unknown field included).
        """
        raw = self.model_dump()
        for name, values in sections.items():
            raw[name].update(values)
        return Config.model_validate(raw)


class ConfigError(UserError):
    """A configuration file that cannot be read or validated; the message says what to change."""


def _valid_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list section (data.rasters.0.path)
            continue
        field = model.model_fields.get(str(part))
        annotation = section_type(field.annotation) if field is not None else None
        if annotation is None:
            return []
        model = annotation
    return list(model.model_fields)


def section_type(annotation) -> type[BaseModel] | None:
    """The section model of a field annotation: ``Section``, ``Section | None`` or ``list[Section]``."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = section_type(arg)
        if found is not None:
            return found
    return None


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


#: The embedded main-job config (LimeSoDa BB.250) that ``sptgnn evaluate`` and ``sptgnn train`` run without a config.
EMBEDDED_CONFIG = Path(__file__).resolve().parent / "configs" / "limesoda_bb250.yaml"


def _read_yaml(path: Path) -> dict:
    """One YAML file as a mapping of sections. Raises :class:`ConfigError` in the user's terms."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (give the path of a YAML file, e.g. configs/limesoda_bb250.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file; give a YAML config") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raise ConfigError(f"{path} is empty; give at least one section (e.g. data: {{dataset: limesoda:BB.250}}), "
                          "or leave out the config to run the embedded default")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, graph, model, loss, train, evaluate)")
    return raw


def merge_config(base: dict, override: dict) -> dict:
    """``override`` over ``base``: mappings merge key by key (recursively), any other value (a list included)
    replaces the base's. Neither argument is changed."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge_config(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def _read_with_bases(path: Path, chain: list[Path]) -> dict:
    """A config file with its ``base:`` chain resolved (a base path is relative to the file naming it)."""
    resolved = path.resolve()
    if resolved in chain:
        loop = " -> ".join(str(p.name) for p in [*chain, resolved])
        raise ConfigError(f"{path}: its base: chain comes back to itself ({loop}); remove one base")
    raw = _read_yaml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be the path of another YAML config, got {base!r}")
    return merge_config(_read_with_bases(path.parent / base, [*chain, resolved]), raw)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a YAML configuration.

    Args:
        path: YAML file; ``None`` gives the defaults (LimeSoDa BB.250). A file may start from another with
            ``base: other.yaml`` (relative to the file): its sections are merged over the base's key by key
            (:func:`merge_config`), so a variant states only what it changes.
        overrides: Nested dict merged over the file's content before validation, e.g. ``{"train": {"members": 2}}``.

    Returns:
        The validated :class:`Config`.

    Raises:
        ConfigError: The file (or a base) is missing, is not YAML, is not a mapping, has an unknown key or an invalid
            value, or a ``base:`` chain loops.
    """
    raw: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = _read_with_bases(Path(path), [])
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping")
        raw[section].update(values)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_config_error(exc, source)) from None
