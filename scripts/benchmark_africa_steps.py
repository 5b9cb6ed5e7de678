"""Time SpTGNN training on the Africa corpus: whole-graph steps against subgraph mini-batch steps, one fold.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/benchmark_africa_steps.py [CONFIG]

Writes ``benchmarks/results/africa_steps.json``: per batch size (``null`` = whole graph) the subgraph size and the
wall and CPU seconds of one training step (forward, backward, AdamW), median of a few steps, with the load average
(on a shared machine wall time is an upper bound; CPU time is the better measure of cost).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sptgnn.config import load_config
from sptgnn.data import load_dataset
from sptgnn.evaluate.crossval import config_folds
from sptgnn.graph.builder import NODE, GraphBuilder
from sptgnn.graph.sampler import InNeighbourSampler
from sptgnn.nn.model import SpTGNN
from sptgnn.train.trainer import stream_dims


def main() -> None:
    logging.disable(logging.WARNING)
    cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else "configs/afsp_africa_blocks100km.yaml")
    samples = load_dataset(cfg.data.dataset)
    fold = config_folds(samples, cfg)[0]
    train, test = samples.subset(fold.train), samples.subset(fold.test)
    graph = GraphBuilder(cfg.graph).fit(train).build(test, cfg.data.target)
    model = SpTGNN(cfg.model, [et[1] for et in graph.edge_types], stream_dims(graph), 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = torch.where(graph[NODE].labelled, torch.randn(graph[NODE].num_nodes), torch.nan)
    n_lab = len(train)
    sampler = InNeighbourSampler(graph, cfg.model.num_layers)
    rows = []
    for bs in (512, 2048, 8192, None):
        walls, cpus, sizes = [], [], []
        for _ in range(4):
            w, c = time.perf_counter(), time.process_time()
            if bs is None:
                sub, seeds = graph, torch.arange(n_lab)
            else:
                seeds = torch.randperm(n_lab)[:bs]
                sub = sampler.sample(seeds)
            out = model(sub, labels if bs is None else labels[sub[NODE].n_id])
            loss = out.mean[: len(seeds)].pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            sizes.append(int(sub[NODE].num_nodes))
        rows.append({"batch_size": bs, "subgraph_nodes": int(np.median(sizes)), "step_wall_s": float(np.median(walls)),
                     "step_cpu_s": float(np.median(cpus)),
                     "epoch_cpu_s": float(np.median(cpus)) * (1 if bs is None else int(np.ceil(n_lab / bs)))})
        print(rows[-1], flush=True)
    out = Path("benchmarks/results/africa_steps.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": str(sys.argv[1:] or "configs/afsp_africa_blocks100km.yaml"), "n_labelled": n_lab,
                               "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(), "steps": rows},
                              indent=2))


if __name__ == "__main__":
    main()
