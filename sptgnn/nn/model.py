"""SpTGNN, one ensemble member: stream encoders → sparse top-k MoE → relational attention → heteroscedastic head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from sptgnn.config import ModelConfig
from sptgnn.nn.point_bands import PointBandEncoder
from sptgnn.nn.positional import PositionalEncoder
from sptgnn.nn.temporal import TemporalEncoder
from sptgnn.graph.builder import NODE, edge_type
from sptgnn.nn.heads import HeteroscedasticHead
from sptgnn.nn.location import FineTunedLocationEncoder
from sptgnn.nn.mlp import MLP
from sptgnn.nn.moe import SparseMoE
from sptgnn.nn.relational_attention import RelationalAttentionLayer

_STREAM_ATTR = {"imagery": "x_imagery", "environment": "x_environment", "position": "pos", "time": "time",
                "location_fm": "x_location_fm"}


@dataclass
class ModelOutput:
    """Output of one forward pass.

    Attributes:
        mean: Predicted mean, standardised target units, ``(num_nodes,)``.
        var: Predicted aleatoric variance, standardised units², ``(num_nodes,)``.
        balance_loss: MoE load-balancing loss (scalar).
        gates: MoE gate weights, ``(num_nodes, E)``.
        gate_kl: KL of the Dirichlet router to its prior (scalar; 0 without ``model.gating: dirichlet``).
        aux_mean: Means of the auxiliary targets (``data.targets``), standardised, ``(num_nodes, T)``, or ``None``.
        aux_var: Their aleatoric variances, ``(num_nodes, T)``, or ``None``.
    """

    mean: Tensor
    var: Tensor
    balance_loss: Tensor
    gates: Tensor
    gate_kl: Tensor | None = None
    aux_mean: Tensor | None = None
    aux_var: Tensor | None = None


def stream_encoder(stream: str, in_dim: int, config: ModelConfig, seed: int = 0) -> nn.Module:
    """The encoder of one stream, ``(N, in_dim)`` → ``(N, config.hidden)``: an MLP for ``imagery`` (point bands) and
    ``environment`` and ``location_fm`` (the frozen location encoder's projected embedding; with
    ``location_fm.finetune_lr_scale > 0`` the encoder itself, :class:`~sptgnn.nn.location.FineTunedLocationEncoder`),
    random Fourier features for ``position``, the date encoder for ``time``. Pre-training
    (:mod:`sptgnn.pretrain`) builds its encoders here too, so their weights load into a member key for key."""
    d = config.hidden
    if stream == "imagery":
        return PointBandEncoder(in_dim, d, config.dropout)
    if stream == "location_fm" and config.location_fm.finetune_lr_scale > 0:
        return FineTunedLocationEncoder(d, config.dropout)
    if stream in ("environment", "location_fm"):
        return MLP(in_dim, d, d, layers=2, dropout=config.dropout)
    if stream == "position":
        return PositionalEncoder(in_dim, d, config.position_frequencies, config.position_scales, seed)
    if stream == "time":
        return TemporalEncoder(d)
    raise ValueError(f"unknown stream {stream!r}")


class SpTGNN(nn.Module):
    """One member of the SpTGNN ensemble.

    Args:
        config: Model section of the run config.
        relations: Relations present in the graphs it will see.
        stream_dims: Input width per stream, e.g. ``{"imagery": 12, "environment": 5, "position": 2, "time": 3}``;
            streams of width 0 or not in ``config.streams`` are left out.
        seed: Seed of the positional encoder's random frequencies.
        num_aux: Auxiliary targets (multi-task learning, ``data.targets``): each gets its own heteroscedastic head
            on the final node states, and a learned log-variance ``task_log_vars`` for ``loss.task_weighting:
            uncertainty``.

    Teacher inputs (``config.teacher_input``, ``stream_dims["teacher"] = F``): the teacher's features of each node
    (:meth:`~sptgnn.train.trend.CovariateTrend.teacher_features`: its trend and, for the kriging-prior teacher, the
    ordinary-kriging prediction and sd of the target; out-of-fold for training samples) are embedded by a linear map and
    added to the fused streams.

    Label inputs (``config.label_inputs``): each node gets ``[y · v, v]`` with ``v = 1`` where its standardised label
    is visible and ``0`` otherwise, embedded and added to the fused streams, so labels reach neighbours through the
    attention layers. The trainer hides the labels of the nodes it scores (masked label prediction, Shi et al. 2021,
    UniMP), and query nodes never show a label, which keeps rule 2 of DESIGN.md.

    Shapes:
        graph with ``N`` nodes, ``label_value`` ``(N,)`` (NaN where hidden) → :class:`ModelOutput` with ``(N,)`` tensors.
    """

    def __init__(self, config: ModelConfig, relations: list[str], stream_dims: dict[str, int], seed: int = 0,
                 num_aux: int = 0):
        super().__init__()
        d = config.hidden
        self.config = config
        self.relations = list(relations)
        self.streams = [s for s in config.streams if stream_dims.get(s, 0) > 0]
        if not self.streams:
            raise ValueError(f"no stream has features: configured {config.streams}, widths {stream_dims}")
        self.encoders = nn.ModuleDict({s: stream_encoder(s, stream_dims[s], config, seed) for s in self.streams})
        if config.fusion == "moe":
            self.moe = SparseMoE(len(self.streams) * d, d, config.num_experts, config.top_k, config.router_noise, config.dropout,
                                 config.gating, config.dirichlet_prior)
        else:  # ablation "no MoE": concatenate the stream embeddings and fuse them with one MLP
            self.moe = None
            self.fuse = MLP(len(self.streams) * d, d, d, layers=2, dropout=config.dropout)
        self.label_encoder = nn.Linear(2, d) if config.label_inputs else None
        teacher = stream_dims.get("teacher", 0) if config.teacher_input else 0
        self.teacher_encoder = nn.Linear(teacher, d) if teacher else None
        self.layers = nn.ModuleList(
            RelationalAttentionLayer(d, self.relations, config.heads, config.dropout) for _ in range(config.num_layers)
        )
        self.head = HeteroscedasticHead(d, config.var_floor, config.dropout)
        self.aux_heads = nn.ModuleList(HeteroscedasticHead(d, config.var_floor, config.dropout) for _ in range(num_aux))
        self.task_log_vars = nn.Parameter(torch.zeros(num_aux)) if num_aux else None
        tabular = stream_dims.get("imagery", 0) + stream_dims.get("environment", 0)
        self.linear_skip = nn.Linear(tabular, 1) if config.linear_skip and tabular else None

    def finetuned_parameters(self) -> tuple[list[nn.Parameter], float] | None:
        """The fine-tuned location encoder's pre-trained parameters and their share of the learning rate
        (``model.location_fm.finetune_lr_scale``), or ``None`` without one."""
        enc = self.encoders["location_fm"] if "location_fm" in self.encoders else None
        if not isinstance(enc, FineTunedLocationEncoder):
            return None
        return enc.backbone_parameters(), self.config.location_fm.finetune_lr_scale

    def embed(self, data: HeteroData, label_value: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Fused node states before message passing ``(N, d)``, the balance loss and the gates ``(N, E)``."""
        store = data[NODE]
        streams = {s: store[_STREAM_ATTR[s]] for s in self.streams}
        if self.teacher_encoder is not None:
            streams["teacher"] = store.teacher
        return self.embed_streams(streams, label_value)

    def embed_streams(self, streams: dict[str, Tensor], label_value: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`embed` from the stream tensors ``{stream: (N, F_stream)}`` (``imagery``, ``environment``,
        ``position``, ``time``, and ``teacher`` with ``model.teacher_input``) instead of a graph: the entry point of
        the query fast path."""
        h, balance, gates = self._fuse(streams)
        if self.teacher_encoder is not None:  # the teacher's features (model.teacher_input), added like label inputs
            h = h + self.teacher_encoder(streams["teacher"])
        if self.label_encoder is not None:
            if label_value is None:
                label_value = torch.full((h.shape[0],), float("nan"), device=h.device)
            visible = ~torch.isnan(label_value)
            lab = torch.stack([torch.where(visible, label_value, 0.0), visible.to(h.dtype)], dim=-1)
            h = h + self.label_encoder(lab)
        return h, balance, gates

    def _fuse(self, streams: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The stream encoders and the MoE (or the concatenating MLP): fused states ``(N, d)``, balance loss, gates."""
        parts = [self.encoders[s](streams[s]) for s in self.streams]
        if self.moe is not None:
            h, balance = self.moe(torch.cat(parts, dim=-1))
            return h, balance, self.moe.last_gates
        h = self.fuse(torch.cat(parts, dim=-1))
        return h, h.new_zeros(()), h.new_ones(h.shape[0], 1)

    def gate_weights(self, streams: dict[str, Tensor]) -> Tensor:
        """MoE gate weights ``(N, E)`` of nodes from their stream tensors (as :meth:`embed_streams`): the router reads
        the nodes' own streams only, so no graph is needed (``(N, 1)`` ones without an MoE)."""
        return self._fuse(streams)[2]

    def layer_states(self, data: HeteroData, label_value: Tensor | None = None) -> list[Tensor]:
        """Node states before each attention layer and after the last: ``L + 1`` tensors ``(N, d)``.

        The hook of the query fast path (:mod:`sptgnn.estimator.query`): on the labelled-only graph these are the
        labelled nodes' states in any graph, since no edge leaves a query node (rule 1 of DESIGN.md).
        """
        h, _, _ = self.embed(data, label_value)
        edge_index = {edge_type(r): data[edge_type(r)].edge_index for r in self.relations}
        edge_attr = {edge_type(r): data[edge_type(r)].edge_attr for r in self.relations}
        states = [h]
        for layer in self.layers:
            h = layer(h, edge_index, edge_attr)
            states.append(h)
        return states

    def forward_cached(self, streams: dict[str, Tensor], caches: list, nbr: dict[str, tuple[Tensor, Tensor]],
                       attend_fn=None, task: int = 0) -> tuple[Tensor, Tensor]:
        """Mean and variance ``(n,)`` (standardised target units) of target ``task`` (0: the primary, ``t``: the
        ``t``-th auxiliary target) of ``n`` query nodes from their streams
        ``{stream: (n, F_stream)}``, per layer the labelled nodes' :meth:`RelationalAttentionLayer.cache_sources` of
        :meth:`layer_states`, and per relation their labelled neighbours (indices ``(n, k)``, attributes ``(n, k)``).
        Equal to :meth:`forward` on the full graph for those nodes, in eval mode (tested)."""
        return self.read_out(self.cached_state(streams, caches, nbr, attend_fn), streams, task)

    def read_out(self, h: Tensor, streams: dict[str, Tensor], task: int = 0) -> tuple[Tensor, Tensor]:
        """Mean and variance ``(n,)`` of target ``task`` from final node states ``h`` ``(n, d)`` (the linear skip of
        the primary reads the ``imagery`` and ``environment`` streams)."""
        if task > 0:
            return self.aux_heads[task - 1](h)
        mean, var = self.head(h)
        if self.linear_skip is not None:
            mean = mean + self.linear_skip(torch.cat([streams["imagery"], streams["environment"]], dim=-1)).squeeze(-1)
        return mean, var

    def cached_state(self, streams: dict[str, Tensor], caches: list, nbr: dict[str, tuple[Tensor, Tensor]],
                     attend_fn=None) -> Tensor:
        """The final node states ``(n, d)`` of :meth:`forward_cached`'s queries, before any head."""
        h, _, _ = self.embed_streams(streams, None)
        for layer, cache in zip(self.layers, caches):
            h = layer.forward_cached(h, cache, nbr) if attend_fn is None else layer.forward_cached(h, cache, nbr, attend_fn)
        return h

    def forward(self, data: HeteroData, label_value: Tensor | None = None) -> ModelOutput:
        h, balance, gates = self.embed(data, label_value)
        edge_index = {edge_type(r): data[edge_type(r)].edge_index for r in self.relations}
        edge_attr = {edge_type(r): data[edge_type(r)].edge_attr for r in self.relations}
        for layer in self.layers:
            h = layer(h, edge_index, edge_attr)
        mean, var = self.head(h)
        if self.linear_skip is not None:
            store = data[NODE]
            mean = mean + self.linear_skip(torch.cat([store.x_imagery, store.x_environment], dim=-1)).squeeze(-1)
        kl = self.moe.last_kl if self.moe is not None and self.moe.last_kl is not None else mean.new_zeros(())
        aux_mean = aux_var = None
        if len(self.aux_heads):
            aux = [head(h) for head in self.aux_heads]
            aux_mean, aux_var = torch.stack([a[0] for a in aux], dim=1), torch.stack([a[1] for a in aux], dim=1)
        return ModelOutput(mean=mean, var=var, balance_loss=balance, gates=gates, gate_kl=kl, aux_mean=aux_mean,
                           aux_var=aux_var)
