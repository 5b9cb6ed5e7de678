"""Training losses: Gaussian NLL, β-NLL, the Moran's I penalty on residuals, and the MoE load-balancing loss.

All work on torch tensors and are differentiable. Targets and predictions are in standardised target space.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_nll(y: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """Mean Gaussian negative log-likelihood, ``½ [log(2π σ²) + (y − μ)² / σ²]``.

    Shapes:
        ``y``, ``mean``, ``var``: ``(num_nodes,)`` → scalar.
    """
    return 0.5 * (torch.log(2 * math.pi * var) + (y - mean) ** 2 / var).mean()


def beta_nll(y: Tensor, mean: Tensor, var: Tensor, beta: float = 0.5) -> Tensor:
    """β-NLL of Seitzer et al. (2022), "On the Pitfalls of Heteroscedastic Uncertainty Estimation", eq. (4).

    Each sample's NLL is weighted by ``stop_grad(σ²)^β``; ``β = 0`` is the Gaussian NLL, ``β = 1`` gives the mean the
    gradient of the MSE.

    Shapes:
        ``y``, ``mean``, ``var``: ``(num_nodes,)`` → scalar.
    """
    nll = 0.5 * (torch.log(2 * math.pi * var) + (y - mean) ** 2 / var)
    return (nll * var.detach() ** beta).mean()


def morans_i(values: Tensor, edge_index: Tensor, num_nodes: int | None = None) -> Tensor:
    """Moran's I of ``values`` with row-standardised weights given by edges (Moran 1950; Cliff & Ord 1981).

    ``I = (n / S0) · Σ_i Σ_j w_ij z_i z_j / Σ_i z_i²`` with ``z = x − mean(x)``, ``w_ij = 1 / deg(i)`` for each edge
    ``j → i`` (so row ``i`` sums to 1) and ``S0 = Σ w_ij`` (the number of nodes with at least one neighbour). Equal to
    ``esda.Moran(values, w).I`` for a libpysal ``W`` with the same neighbours and ``transform="r"``.

    Args:
        values: Node values, shape ``(num_nodes,)``.
        edge_index: ``(2, E)``, row 0 the neighbour ``j``, row 1 the node ``i`` whose row holds it.
        num_nodes: ``n``; defaults to ``len(values)``.

    Returns:
        Scalar tensor; 0 when there are no edges or the values are constant.
    """
    n = values.shape[0] if num_nodes is None else num_nodes
    src, dst = edge_index
    if src.numel() == 0:
        return values.new_zeros(())
    deg = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, dst, torch.ones_like(dst, dtype=values.dtype))
    w = 1.0 / deg[dst]
    z = values - values.mean()
    denom = (z**2).sum()
    if denom <= 0:
        return values.new_zeros(())
    s0 = (deg > 0).sum().to(values.dtype)
    return (n / s0) * (w * z[dst] * z[src]).sum() / denom


def moran_penalty(residuals: Tensor, edge_index: Tensor, num_nodes: int | None = None) -> Tensor:
    """Squared Moran's I of residuals: pushes spatial autocorrelation of residuals towards zero in either sign."""
    return morans_i(residuals, edge_index, num_nodes) ** 2


def moe_balance_loss(gates: Tensor, router_probs: Tensor) -> Tensor:
    """Switch Transformer load-balancing loss, ``E · Σ_e f_e · P_e`` (Fedus et al. 2022, eq. 4).

    ``f_e`` is the share of routing assignments that went to expert ``e`` (top-k assignments counted once each) and
    ``P_e`` the mean router probability of ``e``; the loss is 1 when both are uniform and grows as routing collapses.

    Shapes:
        ``gates``: ``(num_nodes, E)`` sparse gates; ``router_probs``: ``(num_nodes, E)`` → scalar.
    """
    num_experts = gates.shape[1]
    assigned = (gates > 0).to(router_probs.dtype)
    f = assigned.sum(0) / assigned.sum().clamp_min(1.0)
    p = router_probs.mean(0)
    return num_experts * (f * p).sum()


def masked_gaussian_nll(y: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """Per-task mean Gaussian NLL over the entries where ``y`` is finite (a target missing at a node is left out
    for that node only); a task without any finite entry gives 0.

    Shapes:
        ``y``, ``mean``, ``var``: ``(num_nodes, T)`` → ``(T,)``.
    """
    seen = torch.isfinite(y)
    nll = 0.5 * (torch.log(2 * math.pi * var) + (torch.where(seen, y, mean) - mean) ** 2 / var)
    nll = torch.where(seen, nll, torch.zeros_like(nll))
    return nll.sum(0) / seen.sum(0).clamp_min(1).to(nll.dtype)


def multitask_loss(task_losses: Tensor, weighting: str, log_vars: Tensor | None = None,
                   weights: Tensor | None = None, floors: Tensor | None = None) -> Tensor:
    """Combine per-task losses ``L_t`` into one objective.

    ``fixed``: ``Σ_t w_t L_t``. ``uncertainty``: homoscedastic task uncertainty of Kendall, Gal & Cipolla (2018,
    "Multi-task learning using uncertainty to weigh losses", eq. 7), ``Σ_t ½ exp(−s_t) (L_t − f_t) + ½ s_t`` with a
    learned ``s_t = log σ_t²``. The losses here are Gaussian NLLs, which can be negative, and Kendall's objective has a
    minimum in ``s_t`` only for a positive loss (at ``exp(s_t) = L_t``), so each is shifted by its floor ``f_t``, the
    lowest NLL its head can reach (zero residual at the variance floor, ``½ log(2π var_floor)``). A constant shift leaves
    the network's gradients of ``L_t`` unchanged.

    Args:
        task_losses: ``(T,)`` per-task losses, the primary first.
        weighting: ``fixed`` or ``uncertainty``.
        log_vars: ``(T,)`` learned ``s_t`` (``uncertainty``).
        weights: ``(T,)`` fixed weights (``fixed``; ``None``: 1 each).
        floors: ``(T,)`` floors ``f_t`` (``uncertainty``; ``None``: 0).

    Raises:
        ValueError: Unknown ``weighting``, or ``uncertainty`` without ``log_vars``.
    """
    if weighting == "fixed":
        return task_losses.sum() if weights is None else (weights * task_losses).sum()
    if weighting != "uncertainty":
        raise ValueError(f"unknown task weighting {weighting!r}; valid: fixed, uncertainty")
    if log_vars is None:
        raise ValueError("uncertainty task weighting needs the learned log-variances")
    shifted = task_losses - (0.0 if floors is None else floors)
    return (0.5 * torch.exp(-log_vars) * shifted + 0.5 * log_vars).sum()
