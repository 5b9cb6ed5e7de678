"""notebooks/analysis.ipynb runs top to bottom on a tiny run directory (nbclient), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from typer.testing import CliRunner

from sptgnn.cli import app

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def test_analysis_notebook_executes_on_a_tiny_run(tmp_path, monkeypatch, config_dict_factory):
    raw = config_dict_factory(train={"members": 2, "epochs": 2},
                              evaluate={"baselines": ["xgboost", "random_forest"], "moran_permutations": 0})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["evaluate", str(config), "--out", str(run)])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("SPTGNN_RUN_DIR", str(run))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "limesoda:BB.30_2" in outputs and "gate_0" in outputs
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
