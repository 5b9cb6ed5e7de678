"""What a fitted ensemble's mixture of experts reads: the stream-usage summary of its gates."""

from __future__ import annotations

import numpy as np


def stream_usage(ensemble, gates: np.ndarray) -> dict[str, float]:
    """Share of each stream in what the MoE's experts read, weighted by how much each expert is used.

    For member ``m`` and expert ``e`` the share of stream ``s`` is ``‖W_e[:, s]‖² / ‖W_e‖²`` over the columns of the
    expert's first linear layer that read stream ``s`` (the MoE input is the concatenation of the stream embeddings);
    the usage of ``s`` is ``Σ_e ḡ_e · share_e(s)`` with ``ḡ_e`` the mean gate weight of ``e`` over the given nodes,
    averaged over members. A weight-norm attribution: it says which streams the used experts are wired to read, not a
    causal effect.

    Args:
        ensemble: A fitted :class:`~sptgnn.train.ensemble.DeepEnsemble`.
        gates: Gate weights ``(num_nodes, E)`` (e.g. :meth:`DeepEnsemble.gates` of a test fold).

    Returns:
        ``{stream: share}``, shares summing to 1.
    """
    g = np.asarray(gates, dtype=float).mean(0)
    totals: dict[str, float] = {}
    for model in ensemble.members:
        d = model.config.hidden
        experts = model.moe.experts if model.moe is not None else [model.fuse]  # fusion "concat": one MLP, gate 1
        for e, expert in enumerate(experts):
            w = expert[0].weight.detach().numpy() ** 2
            whole = w.sum() or 1.0
            for i, stream in enumerate(model.streams):
                totals[stream] = totals.get(stream, 0.0) + g[e] * w[:, i * d:(i + 1) * d].sum() / whole
    norm = sum(totals.values()) or 1.0
    return {k: float(v / norm) for k, v in totals.items()}


__all__ = ["stream_usage"]
