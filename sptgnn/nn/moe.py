"""Sparse top-k Mixture-of-Experts with a noisy top-k or a Dirichlet-prior router.

``topk_softmax``: Shazeer et al. (2017), "Outrageously Large Neural Networks", eq. (3)–(5):
``H(x) = x W_g + ε · softplus(x W_noise)`` with ``ε ~ N(0, 1)`` during training only, keep the top k logits, softmax
over them.

``dirichlet`` (Dirichlet prior-aware gating, for small samples): the router gives concentrations
``α(x) = α₀ + softplus(x W_g)`` — a symmetric ``Dir(α₀)`` prior plus non-negative evidence — and the gate is the
posterior mean ``α / Σα`` (in training with router noise: a reparameterised draw from ``Dir(α)``), kept top-k sparse and
renormalised. ``KL(Dir(α(x)) ‖ Dir(α₀))`` (``torch.distributions.kl_divergence``), averaged over nodes, pulls routing
towards the prior where the data give little evidence; it joins the load-balancing loss (``loss.dirichlet_weight``).

Load balancing: the Switch Transformer auxiliary loss (Fedus et al. 2022, eq. 4), see
:func:`sptgnn.losses.moe_balance_loss`. Each expert runs only on the nodes routed to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sptgnn.losses import moe_balance_loss
from sptgnn.nn.mlp import MLP


class SparseMoE(nn.Module):
    """Noisy top-k gated mixture of expert MLPs.

    Args:
        in_dim: Input features (the concatenated stream embeddings).
        out_dim: Output features.
        num_experts: ``E``.
        top_k: Experts per node, ``1 <= top_k <= E``.
        noise: Scale of the router noise in training (0 disables it; ``dirichlet``: any value > 0 samples the gates).
        dropout: Dropout inside the experts.
        gating: ``topk_softmax`` or ``dirichlet``.
        prior: Symmetric Dirichlet prior concentration ``α₀`` (``dirichlet``).

    Attributes:
        last_gates: Gate weights of the last forward pass, ``(num_nodes, E)``, rows sum to 1 with ``E - top_k`` zeros;
            kept for interpretation (which expert, hence which stream mix, serves which nodes).
        last_kl: Mean ``KL(Dir(α(x)) ‖ Dir(α₀))`` of the last forward pass (scalar; 0 for ``topk_softmax``).

    Shapes:
        input ``(num_nodes, in_dim)`` → output ``(num_nodes, out_dim)`` and a scalar balance loss.
    """

    def __init__(self, in_dim: int, out_dim: int, num_experts: int, top_k: int, noise: float = 1.0, dropout: float = 0.0,
                 gating: str = "topk_softmax", prior: float = 1.0):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        if gating not in ("topk_softmax", "dirichlet"):
            raise ValueError(f"gating must be 'topk_softmax' or 'dirichlet', got {gating!r}")
        self.top_k, self.noise, self.gating, self.prior = top_k, noise, gating, float(prior)
        self.router = nn.Linear(in_dim, num_experts, bias=False)
        self.noise_proj = nn.Linear(in_dim, num_experts, bias=False)
        nn.init.zeros_(self.router.weight)
        nn.init.zeros_(self.noise_proj.weight)
        self.experts = nn.ModuleList(MLP(in_dim, out_dim, out_dim, layers=2, dropout=dropout) for _ in range(num_experts))
        self.last_gates: Tensor | None = None
        self.last_kl: Tensor | None = None

    def concentrations(self, x: Tensor) -> Tensor:
        """Dirichlet concentrations ``α(x) = α₀ + softplus(x W_g)``, ``(num_nodes, E)`` (``dirichlet`` gating)."""
        return self.prior + F.softplus(self.router(x))

    def _dirichlet_gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha = self.concentrations(x)
        mean = alpha / alpha.sum(-1, keepdim=True)
        probs = torch.distributions.Dirichlet(alpha).rsample() if self.training and self.noise > 0 else mean
        top_val, top_idx = probs.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(probs).scatter(-1, top_idx, top_val / top_val.sum(-1, keepdim=True))
        prior = torch.distributions.Dirichlet(torch.full_like(alpha, self.prior))
        self.last_kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(alpha), prior).mean()
        return gates, mean

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sparse gates ``(num_nodes, E)`` and the clean router probabilities ``(num_nodes, E)`` (``dirichlet``: the
        posterior mean)."""
        if self.gating == "dirichlet":
            return self._dirichlet_gates(x)
        self.last_kl = x.new_zeros(())
        clean = self.router(x)
        logits = clean
        if self.training and self.noise > 0:
            logits = clean + torch.randn_like(clean) * F.softplus(self.noise_proj(x)) * self.noise
        top_val, top_idx = logits.topk(self.top_k, dim=-1)
        gates = torch.zeros_like(logits).scatter(-1, top_idx, F.softmax(top_val, dim=-1))
        return gates, F.softmax(clean, dim=-1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        gates, probs = self.gates(x)
        out = x.new_zeros(x.shape[0], self.experts[0][-1].out_features)
        if not self.training and not torch.is_grad_enabled():
            # inference: every expert on every node, weighted by its gate (exactly 0 where not routed); the same sum as
            # the routed path below without its gather/scatter, which dominates at inference batch sizes
            for e, expert in enumerate(self.experts):
                out = out + gates[:, e, None] * expert(x)
            self.last_gates = gates
            return out, moe_balance_loss(gates, probs)
        for e, expert in enumerate(self.experts):
            idx = gates[:, e].nonzero(as_tuple=True)[0]
            if idx.numel():
                out = out.index_add(0, idx, gates[idx, e, None] * expert(x[idx]))
        self.last_gates = gates.detach()
        return out, moe_balance_loss(gates, probs)
