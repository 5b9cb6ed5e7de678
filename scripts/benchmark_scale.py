"""Scale on two cores (issue 18): graph build at 1M nodes, epoch cost per node from 10k to 1M, training memory over
epochs, and map pixels per CPU second against XGBoost and a random forest, each measured side by side in one run.

    OMP_NUM_THREADS=2 python scripts/benchmark_scale.py --out benchmarks/results/scale.json
    python scripts/benchmark_scale.py --parts map --out /tmp/scale_map.json      # one part only

Parts (``--parts``, results written after each step):

* ``graph``: :class:`~sptgnn.graph.builder.GraphBuilder` fit + build on ``--graph-nodes`` synthetic samples
  (:func:`~sptgnn.data.synthetic.synthetic_samples`: 2-D positions, 5-D spectral space, elevation) with
  ``--threads`` threads, against the bare exact ``cKDTree`` searches of the same relations in input order (trees built,
  same k, same threads); and the approximate spectral search (``graph.spectral_eps``) with its recall of the exact
  neighbours.
* ``epoch``: one epoch of the default 2-layer model on mini-batches of ``--batch-size`` seeds at each of ``--nodes``,
  with the full in-neighbourhood (up to ``--full-max`` nodes) and with ``--fanout``; CPU seconds per node and
  subgraph nodes per batch.
* ``memory``: a ``--memory-epochs``-epoch member at ``--memory-nodes`` nodes in a fresh process, peak resident memory
  per epoch and training time, with the allocator's defaults and with ``train.bound_heap`` (:mod:`sptgnn.memory`).
* ``map``: on LimeSoDa BB.250 with the default config (``--members`` members, its fast student), ``Run.predict_arrays``
  on ``--pixels`` query points against XGBoost (500 trees) and a random forest (100 trees) fitted on the same samples,
  predicting the same points; CPU seconds, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from sptgnn.config import Config, GraphConfig, load_config  # noqa: E402
from sptgnn.data.synthetic import synthetic_samples  # noqa: E402
from sptgnn.graph.builder import GraphBuilder  # noqa: E402
from sptgnn.threads import apply_threads  # noqa: E402


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> dict:
    t1 = _clock()
    return {"wall_s": round(t1[0] - t0[0], 3), "cpu_s": round(t1[1] - t0[1], 3)}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def part_graph(n: int, threads: int, eps: float) -> dict:
    from scipy.spatial import cKDTree

    from sptgnn.graph.relations import _knn

    samples = synthetic_samples(n)
    cfg = GraphConfig()
    t = _clock()
    builder = GraphBuilder(cfg).fit(samples)
    graph = builder.build(None, "soc_g_kg")
    ours = _since(t)
    metric, spectral = samples.metric_coords(), builder.spectral_space(samples)
    t = _clock()  # the bare searches: the same trees and k, input order
    cKDTree(metric).query(metric, k=cfg.k_spatial + 1, workers=threads)
    cKDTree(metric).query(metric, k=cfg.elevation_candidates + 1, workers=threads)
    spectral_tree = cKDTree(spectral)
    _, exact = spectral_tree.query(spectral, k=cfg.k_spectral + 1, workers=threads)
    bare = _since(t)
    t = _clock()
    _, approx = _knn(spectral_tree, n, spectral, cfg.k_spectral, True, threads, eps)
    approx_time = _since(t)
    rows = np.arange(0, n, max(1, n // 100_000))
    exact_sets = [set(r) - {i} for i, r in zip(rows, exact[rows])]
    recall = float(np.mean([len(s & set(a)) / len(s) for s, a in zip(exact_sets, approx[rows])]))
    return {"nodes": n, "threads": threads, "edges": int(sum(graph[et].edge_index.shape[1] for et in graph.edge_types)),
            "spectral_dims": int(spectral.shape[1]), "build": ours, "bare_ckdtree_input_order": bare,
            "ratio_build_to_bare_wall": round(ours["wall_s"] / bare["wall_s"], 3),
            "spectral_eps": eps, "spectral_approx_search": approx_time, "spectral_approx_recall": round(recall, 4)}


def _train_setup(n: int, batch_size: int, fanout: list[int] | None, bound_heap: bool = False):
    import torch

    samples = synthetic_samples(n)
    cfg = Config(train={"batch_size": batch_size, "fanout": fanout, "bound_heap": bound_heap})
    graph = GraphBuilder(cfg.graph).fit(samples).build(None, "soc_g_kg")
    y = torch.log1p(graph["sample"].y)
    return graph, (y - y.mean()) / y.std(), cfg


def part_epoch(n: int, batch_size: int, fanout: list[int] | None) -> dict:
    import sptgnn.train.trainer as trainer
    from sptgnn.graph.sampler import InNeighbourSampler

    graph, y_std, cfg = _train_setup(n, batch_size, fanout)
    sampler = InNeighbourSampler(graph, cfg.model.num_layers, fanout)
    sizes = [sampler.sample(s)["sample"].num_nodes for s in np.array_split(np.random.default_rng(0).permutation(n),
                                                                          max(1, n // batch_size))[:10]]
    t = _clock()
    trainer.train_member(graph, y_std, cfg, seed=0, epochs=1)
    took = _since(t)
    return {"nodes": n, "batch_size": batch_size, "fanout": fanout, "epoch": took,
            "cpu_us_per_node": round(1e6 * took["cpu_s"] / n, 2), "subgraph_nodes_per_batch": float(np.mean(sizes)),
            "cpu_us_per_subgraph_node": round(1e6 * took["cpu_s"] / -(-n // batch_size) / float(np.mean(sizes)), 2)}


def part_memory_child(n: int, epochs: int, batch_size: int, fanout: list[int] | None, bound_heap: bool) -> dict:
    """One member's training in this process; peak RSS per epoch from a 20 ms sampler thread."""
    import sptgnn.train.trainer as trainer

    graph, y_std, cfg = _train_setup(n, batch_size, fanout, bound_heap)
    peaks: list[float] = []
    current = [0.0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            current[0] = max(current[0], _rss_mb())
            time.sleep(0.02)

    original = trainer._seed_batches

    started = [False]

    def marked(*args, **kwargs):  # called once at the start of every epoch
        if started[0]:  # the peak of the epoch that just ended
            peaks.append(round(current[0], 1))
        started[0], current[0] = True, _rss_mb()
        return original(*args, **kwargs)

    trainer._seed_batches = marked
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t = _clock()
    trainer.train_member(graph, y_std, cfg, seed=0, epochs=epochs)
    stop.set()
    peaks.append(round(current[0], 1))
    return {"nodes": n, "epochs": epochs, "bound_heap": bound_heap, "peak_rss_mb_per_epoch": peaks,
            "growth_epoch2_to_last": round(peaks[-1] / peaks[1] - 1, 4), "train": _since(t)}


def part_map(members: int, pixels: int) -> dict:
    from sklearn.ensemble import RandomForestRegressor
    from xgboost import XGBRegressor

    from sptgnn import SpTGNNRegressor
    from sptgnn.data.tables import load_samples

    cfg = load_config().updated(train={"members": members}, student={"enabled": True})
    samples = load_samples(cfg.data)
    run = SpTGNNRegressor.from_config(cfg).fit(samples).run_
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(samples), pixels)
    xy = samples.xy()
    query_xy = np.c_[rng.uniform(xy[:, 0].min(), xy[:, 0].max(), pixels), rng.uniform(xy[:, 1].min(), xy[:, 1].max(), pixels)]
    values = {c: samples.frame[c].to_numpy(dtype=np.float64)[rows] for c in run.needed}
    features = sorted(run.needed)
    X = np.stack([samples.frame[c].to_numpy(dtype=np.float64) for c in features], axis=1)
    Xq = np.stack([values[c] for c in features], axis=1)
    y = samples.target(cfg.data.target)
    xgb = XGBRegressor(n_estimators=500, learning_rate=0.05, max_depth=4, n_jobs=1, random_state=0).fit(X, y)
    rf = RandomForestRegressor(n_estimators=100, n_jobs=1, random_state=0).fit(X, y)
    run.predict_arrays({c: v[:100] for c, v in values.items()}, query_xy[:100])  # caches built once
    run.predict_arrays({c: v[:100] for c, v in values.items()}, query_xy[:100], student=True)
    predictor = run.predictor

    def before():  # the map path before issue 18: the out-of-place attention step, chunks of 16,384
        attend, chunk = predictor._attend, predictor.chunk
        predictor._attend, predictor.chunk = _attend_before, 16_384
        try:
            run.predict_arrays(values, query_xy)
        finally:
            predictor._attend, predictor.chunk = attend, chunk

    jobs = {"sptgnn_ensemble_before": before, "sptgnn_ensemble": lambda: run.predict_arrays(values, query_xy),
            "sptgnn_student": lambda: run.predict_arrays(values, query_xy, student=True),
            "xgboost_500": lambda: xgb.predict(Xq), "random_forest_100": lambda: rf.predict(Xq)}
    cpu: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(3):  # alternated, medians
        for name, job in jobs.items():
            c = time.process_time()
            job()
            cpu[name].append(time.process_time() - c)
    px = {k: round(pixels / float(np.median(v)), 1) for k, v in cpu.items()}
    return {"dataset": cfg.data.dataset, "members": members, "pixels": pixels, "cpu_s": cpu, "px_per_cpu_s": px,
            "trend": "none" if run.ensemble.trend is None else run.ensemble.trend.kind,
            "ratio_to_before": {k: round(v / px["sptgnn_ensemble_before"], 2) for k, v in px.items()},
            "ratio_to_16000": {k: round(v / 16_000, 2) for k, v in px.items()}}


def _attend_before(xl, idx, x_r, attr, we, att, bias, slope):
    """The cached attention step as it was before issue 18 (out of place), for the map part's side-by-side ratio."""
    import torch
    import torch.nn.functional as F

    xg = xl[idx]
    e = xg + x_r
    if we is not None:
        e = e + attr[:, :, None, None] * we
    e = F.leaky_relu(e, slope)
    alpha = torch.softmax((e * att).sum(-1), dim=1)
    out = (alpha.unsqueeze(-1) * xg).sum(1).reshape(xg.shape[0], -1)
    return out if bias is None else out + bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["graph", "epoch", "memory", "map"])
    parser.add_argument("--graph-nodes", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spectral-eps", type=float, default=0.5)
    parser.add_argument("--nodes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--fanout", type=int, nargs="+", default=[4, 2])
    parser.add_argument("--full-max", type=int, default=100_000)
    parser.add_argument("--memory-nodes", type=int, default=50_000)
    parser.add_argument("--memory-epochs", type=int, default=20)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--pixels", type=int, default=100_000)
    parser.add_argument("--memory-child", choices=["default", "bound_heap"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.memory_child:
        apply_threads({"threads": args.threads, "source": "benchmark"})
        res = part_memory_child(args.memory_nodes, args.memory_epochs, args.batch_size, args.fanout,
                                args.memory_child == "bound_heap")
        args.out.write_text(json.dumps(res))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    result: dict = {"commit": commit.strip(), "threads": args.threads, "cores": os.cpu_count()}
    if args.out.exists():
        result = json.loads(args.out.read_text()) | result

    def save(key: str, value) -> None:
        result[key] = {"commit": result["commit"], "value": value}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(key, json.dumps(value), flush=True)

    apply_threads({"threads": args.threads, "source": "benchmark"})
    if "graph" in args.parts:
        save("graph", part_graph(args.graph_nodes, args.threads, args.spectral_eps))
    if "epoch" in args.parts:
        rows = []
        for n in args.nodes:
            for fanout in ([None] if n <= args.full_max else []) + [args.fanout]:
                rows.append(part_epoch(n, args.batch_size, fanout))
                save("epoch", rows)
        flat = [r for r in rows if r["fanout"] == args.fanout]
        save("epoch_cost_ratio_largest_to_smallest", round(flat[-1]["cpu_us_per_node"] / flat[0]["cpu_us_per_node"], 3))
    if "memory" in args.parts:
        runs = {}
        for mode in ("default", "bound_heap"):
            child = args.out.with_suffix(f".memory_{mode}.json")
            subprocess.run([sys.executable, __file__, "--memory-child", mode, "--out", str(child), "--threads",
                            str(args.threads), "--memory-nodes", str(args.memory_nodes), "--memory-epochs",
                            str(args.memory_epochs), "--batch-size", str(args.batch_size), "--fanout",
                            *map(str, args.fanout)], check=True)
            runs[mode] = json.loads(child.read_text())
            child.unlink()
            save("memory", runs)
    if "map" in args.parts:
        apply_threads({"threads": 1, "source": "benchmark"})
        save("map", part_map(args.members, args.pixels))


if __name__ == "__main__":
    main()
