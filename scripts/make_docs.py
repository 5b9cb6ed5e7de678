"""Write the generated reference pages: docs/config.md (YAML keys) and docs/api.md (Python API).

Usage: python scripts/make_docs.py   (tests/docs/test_reference.py fails when the committed pages are stale)
"""

from pathlib import Path

from sptgnn.docgen import api_reference, config_reference

DOCS = Path(__file__).resolve().parents[1] / "docs"

if __name__ == "__main__":
    (DOCS / "config.md").write_text(config_reference())
    (DOCS / "api.md").write_text(api_reference())
    print(f"wrote {DOCS / 'config.md'} and {DOCS / 'api.md'}")
