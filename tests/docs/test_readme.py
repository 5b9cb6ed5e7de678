"""The README's Python example runs as written, and its set-up, main-job and test commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block(heading: str, lang: str) -> str:
    section = README.split(f"## {heading}", 1)[1]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_block("In Python", "python"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    r2 = float(re.search(r"R² (-?[\d.]+)", out).group(1))
    assert r2 > 0.5  # BB.250's first shipped fold: a working model explains most of the SOC variance
    assert (tmp_path / "bb250-run" / "ensemble.pt").is_file()


def test_commands_are_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    setup = _block("Set up", "bash").strip()
    assert "pip install torch==2.13.0" in setup
    assert "pip install torch==2.13.0" in ci
    assert 'pip install -e ".[dev]"' in setup
    assert 'pip install -e ".[dev]"' in ci
    assert _block("Run the tests", "bash").strip() == ".venv/bin/python -m pytest -q"
    assert _block("Run the main job", "bash").strip() == ".venv/bin/sptgnn evaluate"
