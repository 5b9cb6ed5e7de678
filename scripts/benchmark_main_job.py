"""The main job (`sptgnn evaluate`, embedded default) before and after a change: wall and CPU seconds, and its scores,
alone and beside another CPU-bound process (issue 18).

    git worktree add /tmp/before <commit>
    python scripts/benchmark_main_job.py --before /tmp/before --out benchmarks/results/main_job_threads.json

Each run is a fresh ``python -m sptgnn evaluate`` with the source tree on ``PYTHONPATH`` and no thread variables set
(each side's own default); the data directory is ``$SPTGNN_DATA_DIR`` or the shared one beside this checkout, for both
sides (a worktree elsewhere would not find it and would drop the time stream). ``--beside`` runs a one-thread busy loop (NumPy matrix products) beside the job. Results are
written after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import numpy as np, threadpoolctl\nthreadpoolctl.threadpool_limits(1)\na = np.random.rand(400, 400)\nwhile True: a @ a"
KEEP = ("r2", "rmse", "crps", "picp90", "nll")


def run(tree: Path, out: Path, beside: bool, timeout: float | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SPTGNN_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    env.setdefault("SPTGNN_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    shutil.rmtree(out, ignore_errors=True)  # a fresh run folder each time
    busy = subprocess.Popen([sys.executable, "-c", BUSY], env=env) if beside else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "sptgnn", "evaluate", "--out", str(out)], env=env, cwd=tree, check=True,
                       stdout=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"wall_s": round(time.perf_counter() - start, 1), "stopped_after_timeout_s": timeout,
                "beside_busy_process": beside}
    finally:
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the job's CPU only: the busy loop is not reaped yet
        if busy is not None:
            busy.kill()
            busy.wait()
    metrics = json.loads((out / "metrics.json").read_text())
    models = metrics.get("models", metrics)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "beside_busy_process": beside,
            "threads": metrics.get("threads"),
            "scores": {m: {k: v.get(k) for k in KEEP} for m, v in models.items() if isinstance(v, dict) and "r2" in v}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the 'before' commit")
    parser.add_argument("--runs", nargs="+", default=["after", "before", "after+busy", "before+busy"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/main_job"))
    parser.add_argument("--timeout", type=float, help="stop a run after this many seconds (recorded as stopped)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.runs:
        tree = ROOT if name.startswith("after") else args.before
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=tree)
        result[name] = {"commit": commit.stdout.strip(), **run(tree, args.work / name, name.endswith("+busy"), args.timeout)}
        args.out.write_text(json.dumps(result, indent=2))
        print(name, result[name]["wall_s"], result[name].get("cpu_s"), flush=True)


if __name__ == "__main__":
    main()
