"""Pre-trained checkpoints: the folder ``sptgnn pretrain`` writes and the fine-tuning side that reads it.

A checkpoint folder holds ``encoders.pt`` (the ``encoders.<stream>.*`` tensors, loaded with ``weights_only=True``, so
loading runs no code), ``pretrain.json`` (normalisation of the cells, data fingerprint, history, time and memory) and
``config.yaml`` (the config it was pre-trained with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from sptgnn.pretrain.cells import PretrainError

FORMAT = "sptgnn-pretrained/1"
WEIGHTS, META = "encoders.pt", "pretrain.json"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: ``state`` ``{"encoders.<stream>.<param>": tensor}`` and ``meta`` (``pretrain.json``)."""

    state: dict
    meta: dict

    @property
    def streams(self) -> list[str]:
        """Streams whose encoders it holds."""
        return list(self.meta["normalisation"])

    @property
    def normalisation(self) -> dict:
        """``{stream: {"columns", "mean", "scale"}}`` of the pre-training cells."""
        return self.meta["normalisation"]


def save_pretrained(result, config, out: str | Path, overwrite: bool = False) -> Path:
    """Write a :class:`~sptgnn.pretrain.trainer.Pretrained` to the folder ``out`` (all files or none).

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    from sptgnn._version import __version__
    from sptgnn.atomic import atomic_dir

    state = {k: v for k, v in result.model.state_dict().items() if k.startswith("encoders.")}
    meta = {"format": FORMAT, "sptgnn": __version__, "torch": torch.__version__, "hidden": config.model.hidden,
            "normalisation": result.normalisation, "cells": result.cells, "fingerprint": result.fingerprint,
            "source": getattr(result, "source", ""), "history": result.history,
            "val_rmse": result.history[-1]["val_rmse"] if result.history else None,
            "val_rmse_mean_fill": result.val_rmse_mean_fill, "seconds": round(result.seconds, 2),
            "peak_rss_mb": round(result.peak_rss_mb, 1), "pretrain": config.pretrain.model_dump(mode="json")}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        torch.save(state, tmp / WEIGHTS)
        (tmp / META).write_text(json.dumps(meta, indent=2))
        (tmp / "config.yaml").write_text(config.to_yaml())
    return Path(out)


@lru_cache(maxsize=4)
def _load(folder: str, stamp: float) -> Checkpoint:
    path = Path(folder)
    try:
        meta = json.loads((path / META).read_text())
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's own text may advise an unsafe load: never pass it on
        raise PretrainError(f"model.pretrained {folder}: {WEIGHTS} or {META} is not a checkpoint of `sptgnn pretrain` "
                            f"({type(exc).__name__}; it was not loaded, and nothing in it was run); run `sptgnn pretrain` "
                            "again into that folder") from None
    if meta.get("format") != FORMAT:
        raise PretrainError(f"model.pretrained {folder}: {META} has format {meta.get('format')!r}, expected {FORMAT}")
    return Checkpoint(state, meta)


def load_pretrained(folder: str | Path) -> Checkpoint:
    """Read a checkpoint folder (cached while its files are unchanged).

    Raises:
        PretrainError: The folder or its files are missing or unreadable (the message says how to make one).
    """
    path = Path(folder)
    if not (path / META).is_file() or not (path / WEIGHTS).is_file():
        raise PretrainError(f"model.pretrained {folder}: no pre-trained checkpoint there ({META} and {WEIGHTS}); make "
                            "one with `sptgnn pretrain CONFIG --out FOLDER`")
    return _load(str(path.resolve()), max((path / META).stat().st_mtime, (path / WEIGHTS).stat().st_mtime))


def apply_pretrained(model, checkpoint: Checkpoint) -> list[str]:
    """Copy the checkpoint's encoders into a member (:class:`~sptgnn.nn.model.SpTGNN`) after a strict check.

    Returns:
        The streams initialised; the model's ``pretrained_streams`` attribute is set to them.

    Raises:
        PretrainError: A stream the model lacks, or keys missing, unexpected or of another shape (each named).
    """
    problems, copies = [], {}
    for stream in checkpoint.streams:
        if stream not in model.encoders:
            problems.append(f"stream {stream!r} is not in the model (model.streams, or it has no features)")
            continue
        prefix = f"encoders.{stream}."
        want = {prefix + k: v for k, v in model.encoders[stream].state_dict().items()}
        have = {k: v for k, v in checkpoint.state.items() if k.startswith(prefix)}
        problems += [f"missing {k}" for k in sorted(set(want) - set(have))]
        problems += [f"unexpected {k}" for k in sorted(set(have) - set(want))]
        problems += [f"{k}: checkpoint {tuple(have[k].shape)} vs model {tuple(want[k].shape)}"
                     for k in sorted(set(want) & set(have)) if have[k].shape != want[k].shape]
        copies[stream] = {k[len(prefix):]: v for k, v in have.items()}
    if problems:
        raise PretrainError("the pre-trained encoders do not fit this model: " + "; ".join(problems)
                            + f" (pre-trained with hidden {checkpoint.meta.get('hidden')}; pre-train again with this "
                            "config's model section)")
    for stream, state in copies.items():
        model.encoders[stream].load_state_dict(state)
    model.pretrained_streams = list(copies)
    return list(copies)


def optimizer(model, lr: float, weight_decay: float, lr_scale: float = 1.0,
              scaled: tuple[list, float] | None = None) -> torch.optim.AdamW:
    """AdamW over a member's parameters; encoders of ``model.pretrained_streams`` get ``lr × lr_scale`` and are frozen
    (``requires_grad = False``, left out) when ``lr_scale`` is 0; ``scaled`` ``(parameters, scale)`` (a fine-tuned
    location encoder) get ``lr × scale``. Parameters that do not train are left out."""
    pre = [p for s in getattr(model, "pretrained_streams", []) for p in model.encoders[s].parameters()]
    extra, extra_scale = scaled if scaled is not None else ([], 1.0)
    ids = {id(p) for p in pre} | {id(p) for p in extra}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": rest, "lr": lr}]
    if pre and lr_scale > 0:
        groups.append({"params": pre, "lr": lr * lr_scale})
    if extra:
        groups.append({"params": list(extra), "lr": lr * extra_scale})
    for p in pre:
        p.requires_grad_(lr_scale > 0)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


__all__ = ["Checkpoint", "apply_pretrained", "load_pretrained", "optimizer", "save_pretrained"]
