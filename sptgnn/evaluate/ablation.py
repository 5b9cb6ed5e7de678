"""Ablation variants of a run configuration, and the LimeSoDa benchmark suite.

:func:`ablation_variants` derives, from one configuration, the variants of the seed paper's ablation and ours, each a
config override so that every variant is trained on the same folds by :func:`~sptgnn.evaluate.crossval.cross_validate`:

========================  ==================================================================================
``full``                  the configuration as given
``no_graph``              ``model.num_layers = 0`` and no label inputs: an MLP on the fused streams
``only_<relation>``       ``graph.relations = [relation]`` for each configured relation
``no_moe``                ``model.fusion = concat``: the streams are concatenated and fused by one MLP
``dirichlet_gating``      ``model.gating = dirichlet`` (or ``topk_softmax_gating`` when the configuration has it)
``kpr_teacher``           ``model.trend = kpr_random_forest``: the kriging-prior teacher (unless the configuration has it)
``no_teacher``            ``model.trend = none`` and no soft-target term (when the configuration has a teacher)
``teacher_input``         ``model.teacher_input = true``: the teacher's prediction and kriging features as an input
                          (``no_teacher_input`` when the configuration has it; only with a teacher)
``single_task``           ``data.targets = null``: the primary target alone (when the configuration is multi-task)
``no_moran``              ``loss.moran_weight = 0``
``no_position``           the position stream left out of ``model.streams``
``no_time``               the time stream left out
``no_location_fm``        the location foundation-model stream left out (when the configuration has it)
``no_label_inputs``       ``model.label_inputs = false`` (only when the configuration has label inputs)
``no_pretraining``        ``model.pretrained = null``: encoders initialised at random and standardised on the labelled
                          samples (only when the configuration has a pre-trained checkpoint)
========================  ==================================================================================

:data:`LIMESODA_SUITE` lists the ten LimeSoDa datasets with coordinates and Sentinel-2 bands, run on their shipped folds
by ``sptgnn benchmark limesoda``.
"""

from __future__ import annotations

from sptgnn.config import Config, ConfigError

LIMESODA_SUITE = ("B.204", "BB.250", "G.150", "MG.112", "G.104", "MGS.101", "BB.72", "NSW.52", "MWP.36", "BB.30_2")


def ablation_variants(config: Config, only: list[str] | None = None) -> dict[str, Config]:
    """The ablation variants of ``config`` (see the module docstring), ``full`` first.

    Args:
        config: The full configuration.
        only: Keep only these variant names (``full`` is always kept).

    Returns:
        ``{name: config}``; variants that would equal ``full`` (e.g. ``no_time`` without a time stream) are left out.

    Raises:
        ValueError: An unknown name in ``only`` (the valid names are listed).
    """
    m = config.model
    variants: dict[str, Config] = {"full": config}
    variants["no_graph"] = config.updated(model={"num_layers": 0, "label_inputs": False})
    if len(config.graph.relations) > 1:
        for rel in config.graph.relations:
            variants[f"only_{rel}"] = config.updated(graph={"relations": [rel]})
    if m.fusion == "moe":
        variants["no_moe"] = config.updated(model={"fusion": "concat"})
        other = "topk_softmax" if m.gating == "dirichlet" else "dirichlet"
        variants[f"{other}_gating"] = config.updated(model={"gating": other})
    if m.trend != "kpr_random_forest":
        variants["kpr_teacher"] = config.updated(model={"trend": "kpr_random_forest"})
    if m.trend != "none":
        variants["no_teacher_input" if m.teacher_input else "teacher_input"] = config.updated(
            model={"teacher_input": not m.teacher_input})
        variants["no_teacher"] = config.updated(model={"trend": "none"}, loss={"teacher_weight": 0.0})
    if config.data.aux_targets:
        variants["single_task"] = config.updated(data={"targets": None}, loss={"task_weights": None})
    if config.loss.moran_weight > 0:
        variants["no_moran"] = config.updated(loss={"moran_weight": 0.0})
    for stream in ("position", "time", "location_fm"):
        if stream in m.streams and len(m.streams) > 1:
            variants[f"no_{stream}"] = config.updated(model={"streams": [s for s in m.streams if s != stream]})
    if m.label_inputs:
        variants["no_label_inputs"] = config.updated(model={"label_inputs": False})
    if m.pretrained:
        variants["no_pretraining"] = config.updated(model={"pretrained": None})
    if only:
        unknown = sorted(set(only) - set(variants))
        if unknown:
            raise ConfigError(f"unknown ablation variant(s) {unknown}; valid here: {', '.join(variants)}")
        variants = {k: v for k, v in variants.items() if k == "full" or k in only}
    return variants


__all__ = ["ablation_variants", "LIMESODA_SUITE"]
