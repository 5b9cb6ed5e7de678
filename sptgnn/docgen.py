"""Reference pages generated from the code: the configuration reference (from the pydantic schema's docstrings) and
the Python API reference (from the public objects' docstrings). ``python -m sptgnn.docgen [DOCS_DIR]`` writes them (default ``docs/``);
a test fails when the committed pages are stale."""

from __future__ import annotations

from pathlib import Path

import inspect
import re

from pydantic import BaseModel

from sptgnn.config import Config, section_type


def _attributes(doc: str) -> dict[str, str]:
    """The ``Attributes:`` entries of a Google-style docstring, ``{name: text}`` (continuation lines joined)."""
    out: dict[str, str] = {}
    block = re.split(r"\n\s*Attributes:\s*\n", doc or "", maxsplit=1)
    if len(block) < 2:
        return out
    name = None
    for line in block[1].splitlines():
        m = re.match(r"^\s{8}(\w+): ?(.*)$", line)
        if m:
            name, out[m.group(1)] = m.group(1), m.group(2).strip()
        elif name and line.startswith(" " * 12):
            out[name] += " " + line.strip()
        elif line.strip() and not line.startswith(" " * 8):
            break
    return out


def _type(annotation) -> str:
    text = str(annotation).replace("typing.", "")
    if isinstance(annotation, type):
        text = annotation.__name__
    return re.sub(r"<class '(\w+)'>", r"\1", text)


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "required" if field.is_required() else f"`{field.default!r}`"


def config_reference() -> str:
    """Markdown: every section and key of :class:`~sptgnn.config.Config` with type, default and description."""
    lines = ["# Configuration reference", "",
             "Generated from `sptgnn/config.py` by `python -m sptgnn.docgen`; do not edit by hand. A YAML config holds",
             "any of these sections; unknown keys are errors (with a did-you-mean hint). `SpTGNNRegressor`'s flat",
             "parameters map onto them (`SpTGNNRegressor.to_config()`). A file may start from another with",
             "`base: other.yaml` (relative to the file): its sections merge over the base's key by key and any other",
             "value, a list included, replaces the base's, so a variant states only what it changes",
             "(e.g. `configs/afsp_africa_blocks100km_trend.yaml`).", ""]
    todo = [(name, section_type(f.annotation)) for name, f in Config.model_fields.items()]
    seen: set[type] = set()
    while todo:
        path, model = todo.pop(0)
        if model is None or model in seen:
            continue
        seen.add(model)
        doc = inspect.getdoc(model) or ""
        lines += [f"## `{path}`", "", doc.split("\n\n")[0].replace("\n", " "), "", "| key | type | default | meaning |",
                  "|---|---|---|---|"]
        described = _attributes(model.__doc__ or "")
        for name, field in model.model_fields.items():
            text = described.get(name, "").replace("|", "\\|")
            kind = _type(field.annotation).replace("sptgnn.config.", "").replace("|", "\\|")
            lines.append(f"| `{name}` | `{kind}` | {_default(field).replace('|', chr(92) + '|')} | {text} |")
            sub = section_type(field.annotation)
            if sub is not None:
                todo.append((f"{path}.{name}", sub))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _first_paragraph(obj) -> str:
    return (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")


def api_reference() -> str:
    """Markdown: signature and summary of every public name of :mod:`sptgnn` and the public methods of its classes."""
    import sptgnn

    lines = ["# Python API reference", "", "Generated from the docstrings by `python -m sptgnn.docgen`; do not edit by hand.",
             "Everything below is importable from `sptgnn`; the docstrings give shapes, units, errors and sources.", ""]
    for name in sorted(sptgnn.__all__, key=str.lower):
        obj = getattr(sptgnn, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        try:
            sig = str(inspect.signature(obj))
        except (TypeError, ValueError):
            sig = ""
        sig = re.sub(r" at 0x[0-9a-f]+", "", sig)
        lines += [f"## `{name}{sig}`", "", _first_paragraph(obj), ""]
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for meth, member in sorted(vars(obj).items()):
                if meth.startswith("_") or not (inspect.isfunction(member) or isinstance(member, (classmethod, property))):
                    continue
                target = member.__func__ if isinstance(member, classmethod) else member
                target = target.fget if isinstance(target, property) else target
                summary = _first_paragraph(target)
                lines.append(f"- `{meth}`: {summary}" if summary else f"- `{meth}`")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_references(docs: Path) -> list[Path]:
    """Write ``config.md`` and ``api.md`` into the folder ``docs``; returns their paths."""
    pages = {"config.md": config_reference(), "api.md": api_reference()}
    for name, text in pages.items():
        (docs / name).write_text(text)
    return [docs / name for name in pages]


if __name__ == "__main__":
    import sys

    written = write_references(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
    print("wrote " + " and ".join(str(p) for p in written))


__all__ = ["api_reference", "config_reference", "write_references"]
