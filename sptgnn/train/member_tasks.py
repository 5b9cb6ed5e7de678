"""The tasks of a deep-ensemble fit, as the executor runs them (:mod:`sptgnn.parallel`).

Member ``m`` is first trained with early stopping on its own hold-out (:func:`early_stopped`); from the epoch count it
finds follow the second-stage tasks (:func:`follow_ups`): its refit on the whole training fold (``train.refit``) and one
calibration twin per calibration part. Every task is seeded by ``train.seed + m`` alone, so the ensemble is the same
whichever executor runs the tasks and in whatever order they finish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sptgnn.data.samples import SoilSamples
from sptgnn.nn.model import SpTGNN
from sptgnn.splits import spatial_holdout
from sptgnn.train.node_inputs import attach_mask_blocks, attach_teacher_rows
from sptgnn.train.trainer import train_member


@dataclass
class Twin:
    """One calibration part's twin: what member ``m``'s twin trains on and predicts (the same for every member).

    Attributes:
        fit_graph: Graph of the training samples without the part (the twin's labelled nodes).
        targets: Their standardised targets ``(n_rest,)`` (minus the twin's own trend when there is one).
        query_graph: The same labelled nodes with the part's samples as query nodes.
        query_labels: Labels of ``query_graph``'s nodes ``(n_rest + n_part,)``, NaN for the part.
        n_labelled: ``n_rest``, the number of labelled nodes.
        trend: The twin's trend at the part's samples ``(n_part,)`` (standardised units) or ``None``.
        aux: Standardised auxiliary targets of the rest ``(n_rest, T)`` or ``None``.
    """

    fit_graph: object
    targets: torch.Tensor
    query_graph: object
    query_labels: torch.Tensor
    n_labelled: int
    trend: np.ndarray | None
    aux: torch.Tensor | None


@dataclass
class MemberTasks:
    """What every task of one ensemble fit reads (sent to a cluster once).

    Attributes:
        ensemble: The :class:`~sptgnn.train.ensemble.DeepEnsemble` being fitted (builder, transforms, trend set).
        samples: The training samples.
        coords: Their metric coordinates ``(num_samples, D)`` (m), for the members' spatial hold-outs.
        y_all: Standardised targets ``(num_samples,)`` (minus the trend's out-of-fold values when there is one).
        aux_all: Standardised auxiliary targets ``(num_samples, T)`` or ``None``.
        full: Graph of every sample (``train.refit``) or ``None``.
        twins: One :class:`Twin` per calibration part.
    """

    ensemble: object
    samples: SoilSamples
    coords: np.ndarray
    y_all: torch.Tensor
    aux_all: torch.Tensor | None
    full: object
    twins: list[Twin]


def early_stopped(ctx: MemberTasks, m: int) -> tuple[SpTGNN, int]:
    """Member ``m`` trained with early stopping on its own hold-out (``train.val_split``); its model and best epoch."""
    ens, samples, y_all, aux_all = ctx.ensemble, ctx.samples, ctx.y_all, ctx.aux_all
    tc = ens.config.train
    seed = tc.seed + m
    if tc.val_split == "random":  # matches random CV: validation nodes keep near labelled neighbours
        held = np.random.default_rng(seed).random(len(samples)) < tc.val_fraction
        held[np.random.default_rng(seed).integers(len(samples))] = True
    else:
        held = spatial_holdout(ctx.coords, tc.val_fraction, tc.val_blocks, seed)
    fit_part, val_part = samples.subset(~held), samples.subset(held)
    graph = ens.builder.with_labelled(fit_part).build(val_part, ens.target)
    attach_mask_blocks(graph, fit_part, len(val_part), tc.label_mask_block_km)
    attach_teacher_rows(ens, graph, np.r_[np.flatnonzero(~held), np.flatnonzero(held)])
    y_std = torch.cat([y_all[torch.from_numpy(~held)], y_all[torch.from_numpy(held)]])  # graph order: fit, then val
    aux = None if aux_all is None else torch.cat([aux_all[torch.from_numpy(~held)], aux_all[torch.from_numpy(held)]])
    result = train_member(graph, y_std, ens.config, seed, aux=aux)
    return result.model, result.best_epoch


def follow_ups(ctx: MemberTasks, m: int, first: tuple[SpTGNN, int]) -> list[tuple[str, int, int, int]]:
    """The second-stage tasks of member ``m``: ``("refit", m, epochs, -1)`` and ``("twin", m, epochs, part)``."""
    epochs = first[1] + 1
    refit = [("refit", m, epochs, -1)] if ctx.full is not None else []
    return refit + [("twin", m, epochs, p) for p in range(len(ctx.twins))]


def second_stage(ctx: MemberTasks, task: tuple[str, int, int, int]):
    """A refit (its model) or a twin (Gaussian-space location and variance on its calibration part, each ``(n,)``)."""
    kind, m, epochs, part = task
    ens = ctx.ensemble
    seed = ens.config.train.seed + m
    if kind == "refit":
        return train_member(ctx.full, ctx.y_all, ens.config, seed, epochs=epochs, aux=ctx.aux_all).model
    t = ctx.twins[part]
    twin = train_member(t.fit_graph, t.targets, ens.config, seed, epochs=epochs, aux=t.aux)
    return ens.member_output(twin.model, t.query_graph, t.query_labels, t.n_labelled, t.trend)


__all__ = ["MemberTasks", "early_stopped", "follow_ups", "second_stage"]
