"""The generated reference pages in docs/ match the code (regenerate with `python -m sptgnn.docgen`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sptgnn.config import Config
from sptgnn.docgen import api_reference, config_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(("page", "make"), [("config.md", config_reference), ("api.md", api_reference)])
def test_committed_page_is_current(page, make):
    assert (DOCS / page).read_text() == make(), f"docs/{page} is stale: run `python -m sptgnn.docgen`"


def test_config_reference_documents_every_key_of_every_section():
    text = config_reference()
    for section, field in Config.model_fields.items():
        assert f"## `{section}`" in text
        for key in field.annotation.model_fields:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
            assert not row.endswith("|  |"), f"{section}.{key} has no description in its section's docstring"
