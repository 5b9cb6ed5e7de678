"""Run `sptgnn evaluate` on several LimeSoDa datasets and print one Markdown table of pooled out-of-fold scores.

Usage:
    .venv/bin/python scripts/limesoda_table.py [--datasets BB.250 G.150 MG.112] [--out runs/limesoda-table]

Each dataset's metrics.json and predictions.csv land in ``OUT/<dataset>/``; the table is printed and written to
``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COLUMNS = [("r2", "R²", 3), ("rmse", "RMSE g/kg", 2), ("mae", "MAE g/kg", 2), ("mape", "MAPE %", 1),
           ("crps", "CRPS g/kg", 2), ("picp90", "PICP90", 2), ("fit_seconds", "fit s", 0)]


def markdown(rows: list[tuple[str, str, dict]]) -> str:
    """A Markdown table, one line per dataset and model."""
    head = "| dataset | model | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for dataset, model, m in rows:
        cells = ["—" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in COLUMNS]
        lines.append(f"| {dataset} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["BB.250", "G.150", "MG.112"])
    parser.add_argument("--out", type=Path, default=Path("runs/limesoda-table"))
    parser.add_argument("--members", type=int, default=None)
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} exists; pass another --out")
    args.out.mkdir(parents=True)
    rows = []
    for name in args.datasets:
        out = args.out / name
        cmd = [sys.executable, "-m", "sptgnn", "evaluate", "--dataset", f"limesoda:{name}", "--out", str(out)]
        if args.members:
            cmd += ["--members", str(args.members)]
        subprocess.run(cmd, check=True)
        metrics = json.loads((out / "metrics.json").read_text())
        rows += [(name, model, m) for model, m in metrics["models"].items()]
    table = markdown(rows)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
