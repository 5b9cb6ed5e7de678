"""Sparse top-k Mixture-of-Experts with a noisy top-k router.

Router: Shazeer et al. (2017), "Outrageously Large Neural Networks", eq. (3)–(5): ``H(x) = x W_g + ε · softplus(x W_noise)``
with ``ε ~ N(0, 1)`` during training only, keep the top k logits, softmax over them. Load balancing: the Switch Transformer
auxiliary loss (Fedus et al. 2022, eq. 4), see :func:`sptgnn.losses.moe_balance_loss`. Each expert runs only on the nodes
routed to it.
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
        noise: Scale of the router noise in training (0 disables it).
        dropout: Dropout inside the experts.

    Attributes:
        last_gates: Gate weights of the last forward pass, ``(num_nodes, E)``, rows sum to 1 with ``E - top_k`` zeros;
            kept for interpretation (which expert, hence which stream mix, serves which nodes).

    Shapes:
        input ``(num_nodes, in_dim)`` → output ``(num_nodes, out_dim)`` and a scalar balance loss.
    """

    def __init__(self, in_dim: int, out_dim: int, num_experts: int, top_k: int, noise: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.top_k, self.noise = top_k, noise
        self.router = nn.Linear(in_dim, num_experts, bias=False)
        self.noise_proj = nn.Linear(in_dim, num_experts, bias=False)
        nn.init.zeros_(self.router.weight)
        nn.init.zeros_(self.noise_proj.weight)
        self.experts = nn.ModuleList(MLP(in_dim, out_dim, out_dim, layers=2, dropout=dropout) for _ in range(num_experts))
        self.last_gates: Tensor | None = None

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sparse gates ``(num_nodes, E)`` and the clean router probabilities ``(num_nodes, E)``."""
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
