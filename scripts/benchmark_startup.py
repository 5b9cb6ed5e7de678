"""Start-up cost of the command line (issue 29): CPU seconds (user + system, of the child process) of ``sptgnn --help``,
an argument error, a missing config, and of the public API's first use, for this checkout and, side by side, another
one (``--before DIR``, e.g. a ``git worktree`` of an older commit, put first on ``PYTHONPATH``).

    python scripts/benchmark_startup.py [--before /tmp/base] [--repeats 5] → benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "help": ["-m", "sptgnn", "--help"],
    "argument_error": ["-m", "sptgnn", "evaluate", "--members", "0"],
    "missing_config": ["-m", "sptgnn", "evaluate", "missing.yaml"],
    "api_first_use": ["-c", "import sptgnn; sptgnn.SpTGNNRegressor"],
}


def cpu_seconds(args: list[str], tree: Path) -> float:
    """CPU seconds of one child Python run with ``tree`` first on its path."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, *args], env=env, cwd=tree, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another checkout to measure beside this one")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = ap.parse_args()
    trees = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    result = {"python": platform.python_version(), "repeats": args.repeats, "cpu_seconds_median": {}}
    for case, cmd in CASES.items():
        row = {}
        for name, tree in trees.items():
            row[name] = round(statistics.median(cpu_seconds(cmd, tree) for _ in range(args.repeats)), 3)
        if "before" in row:
            row["before_over_after"] = round(row["before"] / row["after"], 1)
        result["cpu_seconds_median"][case] = row
        print(case, row, flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
