"""A fast student distilled from the deep ensemble: one small SpTGNN trunk with one light head per member.

Knowledge distillation (Hinton, Vinyals & Dean 2015) of an ensemble into one network, as AK-KD distils a large model
into a small fast one (Dai et al. 2025). The student keeps the ensemble's predictive *mixture*, not only its moments:
like Hydra (Tran et al. 2020, "Hydra: Preserving Ensemble Diversity for Model Distillation") it is one shared trunk with
``M`` heads, head ``m`` fitted to member ``m``'s Gaussian, so the mean, the aleatoric variance (mean of the heads'
variances) and the epistemic variance (variance of the heads' means) are the ensemble's split. A single Gaussian with
the mixture's two moments lost about 5 % of the ensemble's CRPS on BB.250: the members' mixture is sharper in the
middle and heavier in the tails than its moment-matched Gaussian.

The trunk has the members' streams, graph and relations but ``student.hidden`` width, ``student.num_layers``
attention layers and ``student.num_experts`` experts (top-1). At every labelled node of the ensemble's graph it is
fitted, in standardised space, with label inputs masked as in member training (the same mask shown to members and
student), to

``L = (1/M) Σ_m mean[(μ_s,m − μ_m)² / σ²_m + (log σ²_s,m − log σ²_m)²]``.

Its heads' Gaussians go through the ensemble's back-transform, trend and calibrator like the members'. The transfer set
is the labelled nodes, where the members have seen the labels (the student learns the members' function, which it then
applies at new locations; ``scripts/benchmark_student.py`` measures what it keeps on test folds).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sptgnn.config import ModelConfig
from sptgnn.distributions import Prediction
from sptgnn.graph.builder import edge_type
from sptgnn.nn.model import SpTGNN
from sptgnn.train.trainer import set_seed, stream_dims


def student_model_config(config) -> ModelConfig:
    """The student's model section: the run's, with the width, layers, experts and heads of ``config.student``."""
    st = config.student
    return config.updated(model={"hidden": st.hidden, "num_layers": st.num_layers, "num_experts": st.num_experts,
                                 "top_k": 1, "heads": st.heads}).model


def new_student(config, relations: list[str], dims: dict[str, int], seed: int, members: int) -> SpTGNN:
    """An untrained student: an SpTGNN of :func:`student_model_config` with one head per member (the primary head
    for member 0, the ``aux_heads`` for the others; the student predicts the primary target only)."""
    return SpTGNN(student_model_config(config), relations, dims, seed, num_aux=members - 1)


@torch.no_grad()
def _teacher(members: list[SpTGNN], graph, label_value) -> tuple[torch.Tensor, torch.Tensor]:
    outs = [m(graph, label_value) for m in members]
    return torch.stack([o.mean for o in outs], dim=1), torch.stack([o.var for o in outs], dim=1)


def _heads(out) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's per-head means and variances ``(N, M)`` from its forward output."""
    if out.aux_mean is None:
        return out.mean[:, None], out.var[:, None]
    return torch.cat([out.mean[:, None], out.aux_mean], dim=1), torch.cat([out.var[:, None], out.aux_var], dim=1)


def distil_student(ensemble, seed: int | None = None) -> tuple[SpTGNN, dict]:
    """Train the student of a fitted :class:`~sptgnn.train.ensemble.DeepEnsemble` (see the module docstring).

    Args:
        ensemble: The fitted ensemble (its members, builder, config).
        seed: Seed of the student (default ``train.seed``).

    Returns:
        The student in eval mode and ``{"seconds": …, "final_loss": …}``.

    Raises:
        RuntimeError: The ensemble is not fitted.
    """
    if not ensemble.members or ensemble.builder is None:
        raise RuntimeError("distil_student needs a fitted ensemble")
    start = time.perf_counter()
    config = ensemble.config
    seed = config.train.seed if seed is None else seed
    gen = set_seed(seed)
    graph = ensemble.builder.build(None, ensemble.target)
    ensemble.attach_teacher(graph)
    relations = [r for r in config.graph.relations if edge_type(r) in graph.edge_types]
    student = new_student(config, relations, stream_dims(graph), seed, len(ensemble.members))
    opt = torch.optim.AdamW(student.parameters(), lr=config.student.lr, weight_decay=config.train.weight_decay)
    floor = config.model.var_floor
    labels = ensemble._labelled_inputs(0) if config.model.label_inputs else None
    for m in ensemble.members:
        m.eval()
    fixed = None if labels is not None else _teacher(ensemble.members, graph, None)
    loss = torch.zeros(())
    for _ in range(config.student.epochs):
        label_value = None
        if labels is not None:  # the members' training mask: a random share hidden, shown alike to teacher and student
            hidden = torch.rand(labels.shape[0], generator=gen) < config.model.label_mask_rate
            label_value = torch.where(hidden, torch.nan, labels)
        mu_t, var_t = fixed if fixed is not None else _teacher(ensemble.members, graph, label_value)
        student.train()
        out = student(graph, label_value)
        mu_s, var_s = _heads(out)
        var_t = var_t.clamp_min(floor)
        loss = (((mu_s - mu_t) ** 2 / var_t).mean() + ((var_s.log() - var_t.log()) ** 2).mean()
                + config.loss.balance_weight * out.balance_loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    return student, {"seconds": round(time.perf_counter() - start, 2), "final_loss": float(loss.detach())}


def student_mixture(ensemble, means: np.ndarray, variances: np.ndarray, trend: np.ndarray | None,
                    calibrated: bool = True) -> Prediction:
    """The student's standardised head outputs ``(M, n)`` each as a :class:`Prediction` in target units: each head a
    member (the trend added), back-transformed and recalibrated like the ensemble's mixture."""
    pairs = [ensemble.member_gaussian(m, v, trend) for m, v in zip(means, variances)]
    return ensemble.mixture(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), calibrated)


__all__ = ["distil_student", "new_student", "student_mixture", "student_model_config"]
