"""Deep ensemble of SpTGNN members (Lakshminarayanan et al. 2017) with a save/load run directory.

The members' Gaussians form a mixture: ``mean = mean_m μ_m``, aleatoric variance ``= mean_m σ²_m``, epistemic variance
``= var_m μ_m`` (population variance over members), total variance = aleatoric + epistemic (DESIGN.md, "Terms").
Moments are taken in target units (g/kg for SOC), after each member's back-transform.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import torch

from sptgnn import __version__
from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.graph.builder import NODE, GraphBuilder
from sptgnn.graph.features import NodeFeatureTransform
from sptgnn.nn.model import SpTGNN
from sptgnn.train.splits import spatial_holdout
from sptgnn.train.target import TargetTransform
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.train.trainer import predict_nodes, stream_dims, train_member

RUN_FORMAT = 1


class RunError(ValueError):
    """A run directory that cannot be written or read back; the message says what is wrong and what to do."""


@dataclass
class Prediction:
    """Ensemble prediction in target units (g/kg for SOC).

    Attributes:
        mean: Mixture mean, ``(num_query,)``.
        aleatoric_sd: sqrt of the mean member variance, ``(num_query,)``.
        epistemic_sd: sd of member means, ``(num_query,)``.
        member_mean: ``(M, num_query)``.
        member_var: ``(M, num_query)``.
    """

    mean: np.ndarray
    aleatoric_sd: np.ndarray
    epistemic_sd: np.ndarray
    member_mean: np.ndarray
    member_var: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        """Total predictive sd, ``sqrt(aleatoric² + epistemic²)``, ``(num_query,)``."""
        return np.sqrt(self.aleatoric_sd**2 + self.epistemic_sd**2)

    @classmethod
    def from_members(cls, member_mean: np.ndarray, member_var: np.ndarray) -> "Prediction":
        """Combine member means and variances ``(M, num_query)`` into the mixture moments."""
        return cls(
            mean=member_mean.mean(0),
            aleatoric_sd=np.sqrt(member_var.mean(0)),
            epistemic_sd=member_mean.std(0),
            member_mean=member_mean,
            member_var=member_var,
        )


def _attach_mask_blocks(graph, labelled: SoilSamples, n_query: int | None, block_km: float | None) -> None:
    """Store the square block (``block_km`` side, planar metres) of every labelled node as ``mask_block`` (``-1``
    for query nodes), so that mini-batch training hides whole blocks of labels at once (``train.label_mask_block_km``)."""
    if block_km is None:
        return
    from sptgnn.data.splits import block_ids, planar_coords

    ids = block_ids(planar_coords(labelled), block_km * 1000.0)
    graph[NODE].mask_block = torch.cat([torch.as_tensor(ids, dtype=torch.long),
                                        torch.full((n_query or 0,), -1, dtype=torch.long)])


class DeepEnsemble:
    """``M`` SpTGNN members sharing one graph builder and target transform; a scikit-learn-like ``fit``/``predict``.

    Args:
        config: Run configuration (``train.members`` members, seeds ``train.seed + m``).

    Attributes:
        builder: Graph builder fitted on the training samples (the labelled nodes of every prediction graph).
        target_transform: Target transform fitted on the training targets.
        members: Trained members.
        fit_seconds: Wall-clock seconds of :meth:`fit`.
    """

    def __init__(self, config: Config):
        self.config = config
        self.target = config.data.target
        self.builder: GraphBuilder | None = None
        self.target_transform = TargetTransform(config.data.target_transform)
        self.members: list[SpTGNN] = []
        self.best_epochs: list[int] = []
        self.fit_seconds = 0.0

    # -- fit ----------------------------------------------------------------------------------------------------------
    def fit(self, samples: SoilSamples, progress: Callable[[int], None] | None = None) -> "DeepEnsemble":
        """Train every member on ``samples`` (the labelled nodes).

        Each member holds out its own spatial block part of ``samples`` (``train.val_fraction``) for early stopping.
        With ``train.refit`` the member is then retrained from the same seed on all of ``samples`` for the number of
        epochs found there (full batch: one step per epoch either way), and the refitted model is kept.

        Args:
            samples: Training samples with the configured target.
            progress: Called with the member index after each member.

        Raises:
            SamplesError: The target is missing.
            ValueError: Too few samples for a graph and a hold-out.
        """
        start = time.perf_counter()
        y = samples.target(self.target)
        self.target_transform.fit(y)
        self.builder = GraphBuilder(self.config.graph).fit(samples)
        coords = samples.metric_coords()
        self.members, self.best_epochs = [], []
        tc = self.config.train
        full = self.builder.build(None, self.target) if tc.refit else None
        if full is not None:
            _attach_mask_blocks(full, samples, None, tc.label_mask_block_km)
        y_all = torch.tensor(self.target_transform.transform(y), dtype=torch.float32)
        for m in range(tc.members):
            seed = tc.seed + m
            if tc.val_split == "random":  # matches random CV: validation nodes keep near labelled neighbours
                held = np.random.default_rng(seed).random(len(samples)) < tc.val_fraction
                held[np.random.default_rng(seed).integers(len(samples))] = True
            else:
                held = spatial_holdout(coords, tc.val_fraction, tc.val_blocks, seed)
            fit_part, val_part = samples.subset(~held), samples.subset(held)
            graph = self.builder.with_labelled(fit_part).build(val_part, self.target)
            _attach_mask_blocks(graph, fit_part, len(val_part), tc.label_mask_block_km)
            y_std = torch.cat([y_all[torch.from_numpy(~held)], y_all[torch.from_numpy(held)]])  # graph order: fit, then val
            result = train_member(graph, y_std, self.config, seed)
            if full is not None:
                result = train_member(full, y_all, self.config, seed, epochs=result.best_epoch + 1)
            self.members.append(result.model)
            self.best_epochs.append(result.best_epoch)
            if progress is not None:
                progress(m)
        self.fit_seconds = time.perf_counter() - start
        return self

    # -- predict ------------------------------------------------------------------------------------------------------
    def _labelled_inputs(self, n_query: int) -> torch.Tensor:
        lab = self.builder.labelled
        y_std = self.target_transform.transform(lab.target(self.target))
        return torch.tensor(np.r_[y_std, np.full(n_query, np.nan)], dtype=torch.float32)

    @torch.no_grad()
    def predict(self, query: SoilSamples) -> Prediction:
        """Predict query samples attached to the training samples (rule 1: queries only receive messages).

        Args:
            query: Samples with the same feature columns as the training samples.

        Returns:
            :class:`Prediction` in target units, one entry per query sample.

        Raises:
            RuntimeError: The ensemble is not fitted.
            ValueError: Query feature columns differ from the training ones.
        """
        if not self.members or self.builder is None:
            raise RuntimeError("DeepEnsemble.predict called before fit or load")
        graph = self.builder.build(query, self.target)
        label_value = self._labelled_inputs(len(query))
        n_lab = len(self.builder.labelled)
        bs = self.config.train.batch_size
        sampler = InNeighbourSampler(graph, self.config.model.num_layers) if bs is not None else None
        query_nodes = torch.arange(n_lab, n_lab + len(query))
        means, variances = [], []
        for model in self.members:
            model.eval()
            labels = label_value if self.config.model.label_inputs else None
            if sampler is not None:  # large graphs: the query nodes' subgraphs only, in chunks
                mean, var = predict_nodes(model, sampler, query_nodes, labels, 4 * bs)
            else:
                out = model(graph, labels)
                mean, var = out.mean[n_lab:], out.var[n_lab:]
            m, v = self.target_transform.inverse(mean.numpy(), var.numpy())
            means.append(m)
            variances.append(v)
        return Prediction.from_members(np.stack(means), np.stack(variances))

    @torch.no_grad()
    def gates(self, query: SoilSamples) -> np.ndarray:
        """MoE gate weights of the query nodes averaged over members, ``(num_query, E)``."""
        graph = self.builder.build(query, self.target)
        n_lab = len(self.builder.labelled)
        labels = self._labelled_inputs(len(query))
        return np.mean([m.embed(graph, labels)[2][n_lab:].numpy() for m in self.members], axis=0)

    # -- persistence ------------------------------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a run directory: ``config.yaml``, ``ensemble.pt`` (weights, transforms) and ``labelled.gpkg``.

        Written to a temporary directory beside ``path`` and renamed when complete, so an interrupted save leaves
        nothing under ``path``.

        Raises:
            RunError: ``path`` exists and ``overwrite`` is False, or its parent folder does not exist.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise RunError(f"{path} already exists; choose another --out or remove it")
        if not path.parent.is_dir():
            raise RunError(f"folder {path.parent} does not exist; create it first")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self.write_into(tmp)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    def write_into(self, folder: Path) -> None:
        """Write the run files into an existing folder (used by :meth:`save` and the CLI's atomic output)."""
        b, t = self.builder, self.builder.transform
        lab = b.labelled
        state = {
            "format": RUN_FORMAT,
            "sptgnn_version": __version__,
            "target": self.target,
            "relations": list(b.relations),
            "distance_scale": dict(b.distance_scale),
            "transform": {
                "mean": {k: torch.tensor(v) for k, v in t.mean.items()},
                "scale": {k: torch.tensor(v) for k, v in t.scale.items()},
                "centre_m": torch.tensor(t.centre_m),
                "spread_m": t.spread_m,
                "reference_year": t.reference_year,
                "columns": t.columns,
            },
            "target_transform": self.target_transform.state(),
            "samples": {
                "targets": lab.targets, "feature_groups": lab.feature_groups, "elevation": lab.elevation,
                "date_column": lab.date_column, "name": lab.name,
            },
            "members": [m.state_dict() for m in self.members],
            "best_epochs": self.best_epochs,
            "fit_seconds": self.fit_seconds,
        }
        (folder / "config.yaml").write_text(self.config.to_yaml())
        torch.save(state, folder / "ensemble.pt")
        frame = lab.frame.copy()
        if lab.date_column:
            frame[lab.date_column] = pd.to_datetime(frame[lab.date_column]).dt.strftime("%Y-%m-%d")
        frame.to_file(folder / "labelled.gpkg", driver="GPKG", layer="labelled")

    @classmethod
    def load(cls, path: str | Path) -> "DeepEnsemble":
        """Load a run directory written by :meth:`save`; predictions equal those before saving.

        Raises:
            RunError: A missing or incomplete run directory, a run from another format version, or a corrupt checkpoint.
        """
        from sptgnn.config import ConfigError, load_config

        path = Path(path)
        files = [path / "config.yaml", path / "ensemble.pt", path / "labelled.gpkg"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise RunError(f"{path} is not a complete sptgnn run directory (missing {missing}); train one with `sptgnn train`")
        try:
            config = load_config(files[0])
        except ConfigError as exc:
            raise RunError(f"{path}: {exc}") from None
        try:
            state = torch.load(files[1], map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise RunError(f"{files[1]} is corrupt or not an sptgnn checkpoint ({type(exc).__name__}); retrain the run") from None
        if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
            raise RunError(
                f"{files[1]} has run format {state.get('format') if isinstance(state, dict) else '?'}, this sptgnn reads "
                f"format {RUN_FORMAT}; retrain with this version"
            )
        s = state["samples"]
        frame = gpd.read_file(files[2], layer="labelled")
        if s["date_column"]:
            frame[s["date_column"]] = pd.to_datetime(frame[s["date_column"]])
        labelled = SoilSamples(frame=frame, targets=s["targets"], feature_groups=s["feature_groups"], elevation=s["elevation"],
                               date_column=s["date_column"], name=s["name"])
        ens = cls(config)
        builder = GraphBuilder(config.graph)
        builder.labelled = labelled
        builder.relations = list(state["relations"])
        builder.distance_scale = dict(state["distance_scale"])
        tr = state["transform"]
        builder.transform = NodeFeatureTransform(
            mean={k: v.numpy() for k, v in tr["mean"].items()}, scale={k: v.numpy() for k, v in tr["scale"].items()},
            centre_m=tr["centre_m"].numpy(), spread_m=tr["spread_m"], reference_year=tr["reference_year"], columns=tr["columns"],
        )
        ens.builder = builder
        ens.target_transform = TargetTransform(**state["target_transform"])
        graph = builder.build(None, ens.target)
        dims = stream_dims(graph)
        for m, weights in enumerate(state["members"]):
            model = SpTGNN(config.model, builder.relations, dims, config.train.seed + m)
            try:
                model.load_state_dict(weights)
            except RuntimeError as exc:
                raise RunError(f"{files[1]}: member {m} weights do not match the config's model ({exc}); retrain the run") from None
            model.eval()
            ens.members.append(model)
        ens.best_epochs = list(state["best_epochs"])
        ens.fit_seconds = float(state["fit_seconds"])
        return ens


__all__ = ["DeepEnsemble", "Prediction", "RunError"]
