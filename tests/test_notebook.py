"""Both notebooks run top to bottom (nbclient) from a working directory outside the repository, with their
``parameters`` cell set to small values, so they cannot rot; they import only the public API."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from typer.testing import CliRunner

from sptgnn.cli import app

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, parameters: str, cwd: Path) -> list[str]:
    """Run a notebook with its ``parameters`` cell replaced; returns the text outputs. Fails on any error output."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = parameters
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert errors == []
    return [o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs]


@pytest.mark.parametrize("name", ["quickstart.ipynb", "analysis.ipynb"])
def test_a_notebook_imports_only_the_public_api(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sptgnn"):
                assert node.module == "sptgnn", f"{name} imports {node.module}"


def test_quickstart_cross_validates_bb250(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    params = 'MEMBERS, EPOCHS = 1, 2\nEVALUATE = {"baselines": ["xgboost"], "split": "random", "n_folds": 2, "moran_permutations": 0}\n'
    text = "".join(_execute("quickstart.ipynb", params, tmp_path))
    assert "sptgnn" in text
    assert "xgboost" in text


def test_analysis_notebook_executes_on_a_tiny_run(tmp_path, monkeypatch, config_dict_factory):
    raw = config_dict_factory(train={"members": 2, "epochs": 2},
                              evaluate={"baselines": ["xgboost", "random_forest"], "moran_permutations": 0})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["evaluate", str(config), "--out", str(run)])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = "".join(_execute("analysis.ipynb", f"RUN_DIR = {str(run)!r}\n", tmp_path))
    assert "limesoda:BB.30_2" in text
    assert "gate_0" in text
