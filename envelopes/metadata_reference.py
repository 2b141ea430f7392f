"""docs/reference/metadata.md's field table, generated from the declarations in
envelopes/metadata.py (each field's type, limits, description and edXML element): ``python -m
envelopes.metadata_reference`` rewrites it in place; ``--check`` only says whether it drifted
(tests/unit/test_metadata.py fails when it does)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from annotated_types import Ge, Le, MaxLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from envelopes.metadata import OBJECTS, Metadata, Shape

#: A file of the repository, not of the installed package: run from the repository's root.
REFERENCE = Path("docs", "reference", "metadata.md")
BEGIN = (
    "<!-- field table: generated from envelopes/metadata.py by "
    "`python -m envelopes.metadata_reference` -->"
)
END = "<!-- end of the generated field table -->"
_PLAIN = {str: "string", int: "integer", bool: "boolean", dt.date: "ISO date"}


def table() -> str:
    """The markdown between :data:`BEGIN` and :data:`END`."""
    rows = ["| key | type | rule | edXML |\n|---|---|---|---|\n"]
    for model in OBJECTS:
        prefix = "" if model is Metadata else f"{_title(model)}."
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            rule = "; ".join(part for part in (_limits(field), field.description) if part)
            rows.append(
                f"| `{prefix}{field.alias or name}` | {_shape(field)} | "
                f"{' '.join(rule.split())} | {_code(str(extra.get('edxml', '')))} |\n"
            )
    return "".join(rows)


def _title(model: type[BaseModel]) -> str:
    return str(model.model_config.get("title") or model.__name__)


def _code(text: str) -> str:
    return f"`{text}`" if text and text != "—" else text


def _limits(field: FieldInfo) -> str:
    parts = ["required"] if field.is_required() else []
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    longest = next((m.max_length for m in field.metadata if isinstance(m, MaxLen)), None)
    if high is not None:
        parts.append(f"{low or 0}–{high}")
    elif low is not None:
        parts.append(f"≥ {low}")
    if longest is not None:
        parts.append(f"≤ {longest} characters")
    return ", ".join(parts)


def _shape(field: FieldInfo) -> str:
    shape = next((m for m in field.metadata if isinstance(m, Shape)), None)
    return shape.text if shape else _type(field.annotation)


def _type(hint: Any) -> str:
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is list:
        inner = args[0]
        named = isinstance(inner, type) and issubclass(inner, BaseModel)
        return f"list of {_title(inner) if named else _type(inner)}"
    if args and get_origin(hint) is not list:  # X | None, or Annotated[X, …]
        inner = args[0]
        shape = next((m for m in get_args(hint)[1:] if isinstance(m, Shape)), None)
        return shape.text if shape else _type(inner)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return " \\| ".join(f"`{member.value}`" for member in hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return f"object ({_title(hint)})"
    return _PLAIN.get(hint, str(hint))


def rewritten(document: str) -> str:
    """``document`` with its generated part replaced by :func:`table`."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not (begin and end):
        raise ValueError(f"{REFERENCE.name} has no {BEGIN!r} … {END!r} block")
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="metadata.md's field table from the models")
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    parser.add_argument("--file", type=Path, default=REFERENCE, help=f"default: {REFERENCE}")
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    wanted = rewritten(current)
    if args.check:
        if wanted != current:
            print(f"{args.file} is out of date: run python -m envelopes.metadata_reference")
            return 1
        return 0
    args.file.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
