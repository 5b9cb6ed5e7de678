"""Full-batch training of one SpTGNN member with early stopping on a spatially held-out part of the training fold."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch_geometric.data import HeteroData

from sptgnn.config import Config
import sptgnn.memory as memory
from sptgnn.graph.builder import NODE, edge_type
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.losses import moran_penalty
from sptgnn.pretrain.checkpoint import apply_pretrained, load_pretrained, optimizer
from sptgnn.nn.model import SpTGNN
from sptgnn.train.objective import objective, teacher_weight, validation_score
from sptgnn.train.tasks import aux_loss


@dataclass
class TrainResult:
    """A trained member and its history.

    Attributes:
        model: The member at its best validation epoch, in eval mode.
        best_epoch: Epoch of the best validation score.
        history: Per-epoch ``train_loss`` and ``val_score`` (standardised target space).
    """

    model: SpTGNN
    best_epoch: int
    history: dict[str, list[float]] = field(default_factory=dict)


def set_seed(seed: int) -> torch.Generator:
    """Seed torch's global generator (initialisation, dropout, router noise) and return a generator for label masks."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stream_dims(graph: HeteroData) -> dict[str, int]:
    """Input width per stream of a built graph."""
    s = graph[NODE]
    return {"imagery": s.x_imagery.shape[1], "environment": s.x_environment.shape[1], "position": s.pos.shape[1],
            "time": s.time.shape[1], "teacher": s.teacher.shape[1] if "teacher" in s else 0,
            "location_fm": s.x_location_fm.shape[1] if "x_location_fm" in s else 0}


def _subgraph_edges(edge_index: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Edges among ``keep`` nodes, renumbered to ``0 … keep.sum()-1``."""
    new = torch.full((keep.numel(),), -1, dtype=torch.long)
    new[keep] = torch.arange(int(keep.sum()))
    both = keep[edge_index[0]] & keep[edge_index[1]]
    return new[edge_index[:, both]]


def _new_model(config: Config, graph: HeteroData, seed: int) -> SpTGNN:
    """A member, its imagery / environment encoders copied from ``model.pretrained`` when set."""
    relations = [r for r in config.graph.relations if edge_type(r) in graph.edge_types]
    model = SpTGNN(config.model, relations, stream_dims(graph), seed, num_aux=len(config.data.aux_targets))
    if config.model.pretrained:
        apply_pretrained(model, load_pretrained(config.model.pretrained))
    return model


def _optimizer(model: SpTGNN, config: Config) -> torch.optim.Optimizer:
    return optimizer(model, config.train.lr, config.train.weight_decay, config.model.pretrained_lr_scale,
                     model.finetuned_parameters())


class _Stopper:
    """Early-stopping bookkeeping shared by the full-batch and the mini-batch trainer: keeps the state of the best
    validation epoch and counts epochs without improvement (more than 1e-4 lower) up to ``patience``."""

    def __init__(self, shadow: SpTGNN, patience: int):
        self.shadow, self.patience = shadow, patience
        self.best, self.best_epoch, self.bad = np.inf, 0, 0
        self.best_state = copy.deepcopy(shadow.state_dict())

    def update(self, val: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s validation score; ``True`` when patience has run out."""
        if val < self.best - 1e-4:
            self.best, self.best_epoch, self.bad = val, epoch, 0
            self.best_state = copy.deepcopy(self.shadow.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience

    def result(self, epochs: int | None, history: dict) -> TrainResult:
        """The best-epoch model (early stopping) or the last one (``epochs`` fixed), in eval mode."""
        if epochs is None:
            self.shadow.load_state_dict(self.best_state)
            best_epoch = self.best_epoch
        else:
            best_epoch = epochs - 1
        self.shadow.eval()
        return TrainResult(model=self.shadow, best_epoch=best_epoch, history=history)


def _averaged(model: SpTGNN, decay: float) -> tuple[AveragedModel | None, SpTGNN]:
    """The exponential moving average of ``model``'s weights (Polyak & Juditsky 1992) and the model that is validated
    and returned: the average, or ``model`` itself when ``decay`` is 0."""
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay > 0 else None
    return averaged, (averaged.module if averaged is not None else model)


def train_member(graph: HeteroData, y_std: torch.Tensor, config: Config, seed: int, epochs: int | None = None,
                 aux: torch.Tensor | None = None) -> TrainResult:
    """Train one member on a graph whose labelled nodes are the fit part and whose query nodes are the validation part.

    Each epoch hides the labels of a random ``label_mask_rate`` share of the labelled nodes and scores the model on
    them only (masked label prediction; with ``label_inputs`` off every labelled node is scored and no label is
    shown). The loss is the configured NLL + ``moran_weight`` × squared Moran's I of the scored nodes' standardised
    residuals over the spatial relation + ``balance_weight`` × the MoE balance loss. Early stopping watches the Gaussian
    score (``train.monitor``: RMSE or Gaussian NLL) of the validation nodes, predicted with every labelled label visible, as at test time.

    Args:
        graph: Built graph (labelled = fit part, query = validation part).
        y_std: Standardised targets of every node, shape ``(num_nodes,)``: the validation (query) nodes' targets are
            used only to score early stopping, never shown to the model.
        config: Run configuration.
        seed: Member seed: initialisation, dropout, router noise and label masks.
        epochs: Train exactly this many epochs and keep the last state (no early stopping), as when refitting on the
            whole training fold with the epoch count found on the hold-out; ``None`` for early stopping.
        aux: Standardised auxiliary targets (``data.targets``) of every node, ``(num_nodes, T)``, NaN where missing;
            their heads are trained on the same scored nodes as the primary (multi-task learning). Early stopping
            watches the primary only.

    With ``train.batch_size`` set, training runs on subgraph mini-batches instead (see :func:`_train_member_batched`).

    Returns:
        :class:`TrainResult` with the best-epoch model in eval mode.
    """
    if config.train.batch_size is not None:
        return _train_member_batched(graph, y_std, config, seed, epochs, aux)
    gen = set_seed(seed)
    model = _new_model(config, graph, seed)
    opt = _optimizer(model, config)
    labelled = graph[NODE].labelled
    query = ~labelled
    n_lab = int(labelled.sum())
    visible_all = torch.where(labelled, y_std, torch.nan)
    spatial = graph[edge_type("spatial")].edge_index if edge_type("spatial") in graph.edge_types else None
    averaged, shadow = _averaged(model, config.train.ema_decay)
    stopper = _Stopper(shadow, config.train.patience)
    history: dict[str, list[float]] = {"train_loss": [], "val_score": []}
    for epoch in range(config.train.epochs if epochs is None else epochs):
        model.train()
        if config.model.label_inputs:
            hidden = torch.zeros_like(labelled)
            hidden[:n_lab] = torch.rand(n_lab, generator=gen) < config.model.label_mask_rate
            if not hidden.any():
                hidden[int(torch.randint(n_lab, (1,), generator=gen))] = True
            label_value = torch.where(hidden, torch.nan, visible_all)
        else:
            hidden, label_value = labelled.clone(), None
        out = model(graph, label_value)
        yt, mu, var = y_std[hidden], out.mean[hidden], out.var[hidden]
        loss = (objective(config, epoch, yt, mu, var) + config.loss.balance_weight * out.balance_loss
                + config.loss.dirichlet_weight * out.gate_kl + teacher_weight(config, epoch) * out.mean.square().mean()
                + aux_loss(config, model, out, hidden, aux))
        if config.loss.moran_weight > 0 and spatial is not None:
            sub = _subgraph_edges(spatial, hidden)
            loss = loss + config.loss.moran_weight * moran_penalty((yt - mu) / var.sqrt(), sub, int(hidden.sum()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if averaged is not None:
            averaged.update_parameters(model)
        history["train_loss"].append(float(loss.detach()))
        if epochs is not None:  # refit: a fixed number of epochs, the last state is kept
            continue
        shadow.eval()
        with torch.no_grad():
            ev = shadow(graph, visible_all if config.model.label_inputs else None)
            val = validation_score(config, y_std[query], ev.mean[query], ev.var[query]) if query.any() else float(loss.detach())
        history["val_score"].append(val)
        if stopper.update(val, epoch):
            break
    return stopper.result(epochs, history)


def _seed_batches(graph: HeteroData, n_lab: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Seed batches of one epoch: a random permutation of the labelled nodes cut into ``batch_size`` pieces, or, when
    the graph carries ``mask_block`` (``train.label_mask_block_km``), whole spatial blocks in random order gathered
    until a batch holds at least ``batch_size`` seeds, so a seed never sees the label of a node in its own block."""
    store = graph[NODE]
    if "mask_block" not in store:
        return list(torch.randperm(n_lab, generator=gen).split(batch_size))
    blocks = store.mask_block[:n_lab]
    order = torch.argsort(blocks, stable=True)
    uniq, counts = torch.unique_consecutive(blocks[order], return_counts=True)
    groups = list(order.split(counts.tolist()))
    batches, current, size = [], [], 0
    for b in torch.randperm(len(groups), generator=gen).tolist():
        current.append(groups[b])
        size += len(groups[b])
        if size >= batch_size:
            batches.append(torch.cat(current))
            current, size = [], 0
    if current:
        batches.append(torch.cat(current))
    return batches


@torch.no_grad()
def predict_nodes(model: SpTGNN, sampler: InNeighbourSampler, nodes: torch.Tensor, label_value: torch.Tensor | None,
                  batch_size: int, task: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (standardised space) of ``nodes`` ``(n,)``, predicted on their subgraphs in chunks, of the
    primary target (``task`` 0) or auxiliary target ``task``.

    ``label_value`` ``(N,)`` holds the labels visible to the model on the whole graph (NaN where hidden), or ``None``.
    """
    model.eval()
    means, variances = [], []
    for chunk in nodes.split(batch_size):
        sub = sampler.sample(chunk, full=True)
        out = model(sub, None if label_value is None else label_value[sub[NODE].n_id])
        mean, var = (out.mean, out.var) if task == 0 else (out.aux_mean[:, task - 1], out.aux_var[:, task - 1])
        means.append(mean[: sub.num_seeds])
        variances.append(var[: sub.num_seeds])
    if not means:
        return torch.empty(0), torch.empty(0)
    return torch.cat(means), torch.cat(variances)


def _train_member_batched(graph: HeteroData, y_std: torch.Tensor, config: Config, seed: int,
                          epochs: int | None = None, aux: torch.Tensor | None = None) -> TrainResult:
    """:func:`train_member` on subgraph mini-batches (``train.batch_size`` seeds per step).

    Each step draws a batch of labelled seed nodes (a random permutation per epoch), samples their
    ``model.num_layers``-hop in-neighbourhood (:class:`~sptgnn.graph.sampler.InNeighbourSampler`; every in-edge, or
    ``train.fanout`` sampled ones per relation per hop),
    hides the seeds' labels and scores the seeds: masked label prediction with the batch as the mask, so no node sees
    its own label (rule 2). The Moran's I penalty uses the spatial edges among the batch's seeds. Early stopping and
    refit count epochs (passes over the labelled nodes); validation predicts the query nodes on their subgraphs with
    every labelled label visible, as at test time.
    """
    gen = set_seed(seed)
    tc = config.train
    if tc.bound_heap:  # subgraph tensors mapped and unmapped: flat resident memory, slower steps (sptgnn.memory)
        memory.bound_heap()
    model = _new_model(config, graph, seed)
    opt = _optimizer(model, config)
    labelled = graph[NODE].labelled
    n_lab = int(labelled.sum())
    query_nodes = torch.nonzero(~labelled).flatten()
    visible_all = torch.where(labelled, y_std, torch.nan)
    sampler = InNeighbourSampler(graph, config.model.num_layers, tc.fanout, gen)  # fanout: training only
    spatial = edge_type("spatial")
    averaged, shadow = _averaged(model, tc.ema_decay)
    stopper = _Stopper(shadow, tc.patience)
    history: dict[str, list[float]] = {"train_loss": [], "val_score": []}
    bs = int(tc.batch_size)
    for epoch in range(tc.epochs if epochs is None else epochs):
        model.train()
        losses = []
        for seeds in _seed_batches(graph, n_lab, bs, gen):
            sub = sampler.sample(seeds)
            n_id, b = sub[NODE].n_id, sub.num_seeds
            label_value = None
            if config.model.label_inputs:
                label_value = visible_all[n_id].clone()
                label_value[:b] = torch.nan
            out = model(sub, label_value)
            yt, mu, var = y_std[seeds], out.mean[:b], out.var[:b]
            loss = (objective(config, epoch, yt, mu, var) + config.loss.balance_weight * out.balance_loss
                    + config.loss.dirichlet_weight * out.gate_kl + teacher_weight(config, epoch) * mu.square().mean()
                    + aux_loss(config, model, out, torch.arange(b), aux, None if aux is None else aux[seeds]))
            if config.loss.moran_weight > 0 and spatial in sub.edge_types:
                keep = torch.zeros(sub[NODE].num_nodes, dtype=torch.bool)
                keep[:b] = True
                sub_edges = _subgraph_edges(sub[spatial].edge_index, keep)
                if sub_edges.shape[1]:
                    loss = loss + config.loss.moran_weight * moran_penalty((yt - mu) / var.sqrt(), sub_edges, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if averaged is not None:
                averaged.update_parameters(model)
            losses.append(float(loss.detach()))
        history["train_loss"].append(float(np.mean(losses)))
        memory.release_freed_memory()  # the subgraphs' freed heap goes back to the system (sptgnn.memory)
        if epochs is not None:
            continue
        if query_nodes.numel():
            mean, var = predict_nodes(shadow, sampler, query_nodes, visible_all if config.model.label_inputs else None, 4 * bs)
            val = validation_score(config, y_std[query_nodes], mean, var)
        else:
            val = history["train_loss"][-1]
        history["val_score"].append(val)
        if stopper.update(val, epoch):
            break
    return stopper.result(epochs, history)
