"""docs/reference/config.md's settings tables, generated from the declarations in
gateway/settings.py (each field's type, default and docstring): ``python -m
gateway.settings_reference`` rewrites them in place; ``--check`` only says whether they drifted
(tests/unit/test_config_reference.py fails when they do)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.settings import CHANNEL_MODELS, Channel, Settings

#: A file of the repository, not of the installed package: run from the repository's root.
REFERENCE = Path("docs", "reference", "config.md")
BEGIN = (
    "<!-- settings tables: generated from gateway/settings.py by "
    "`python -m gateway.settings_reference` -->"
)
END = "<!-- end of the generated settings tables -->"
HEADER = "| key | default | meaning |\n|---|---|---|\n"
#: Root fields that are not tables of the file.
NOT_SECTIONS = ("channels", "base_dir")


def tables() -> str:
    """The markdown between :data:`BEGIN` and :data:`END`."""
    parts = [HEADER]
    for section, field in Settings.model_fields.items():
        if section in NOT_SECTIONS:
            continue
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), section
        parts += _rows(section, model, model.model_fields)
    common = {k: f for k, f in Channel.model_fields.items() if k != "name"}
    parts += [
        "\n### Channels\n\nOne table per channel, `[channels.NAME]` (NAME in lower case). Every "
        "channel takes these keys:\n\n",
        HEADER,
        *_rows("channels.NAME", Channel, common),
    ]
    for model in CHANNEL_MODELS:
        own = {k: f for k, f in model.model_fields.items() if k not in Channel.model_fields}
        parts += [f"\n{_one_line(model.__doc__ or '')} Its own keys:\n\n", HEADER]
        parts += _rows("channels.NAME", model, own) if own else ["| (none) | | |\n"]
    return "".join(parts)


def _rows(prefix: str, model: type[BaseModel], fields: dict[str, FieldInfo]) -> list[str]:
    rows = []
    for name, field in fields.items():
        assert field.description, f"{model.__name__}.{name} has no docstring"
        meaning = _one_line(field.description).replace("|", "\\|")
        rows.append(f"| `{prefix}.{name}` | {_default(name, field)} | {meaning} |\n")
    return rows


def _default(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown" in extra:
        return str(extra["shown"])
    secret = field.repr is False
    if field.default is PydanticUndefined:
        return "— (required, no default)" if secret else "— (required)"
    return '"" (no default)' if secret else _value(name, field.default)


def _value(name: str, value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and name.endswith("_bytes"):
        for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size} {unit} ({value})"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[]" if not value else ", ".join(f"`{v}`" for v in value)
    return f"`{value}`" if str(value) else '""'


def _one_line(text: str) -> str:
    return " ".join(text.split())


def rewritten(document: str) -> str:
    """``document`` with its generated part replaced by :func:`tables`."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not (begin and end):
        raise ValueError(f"{REFERENCE.name} has no {BEGIN!r} … {END!r} block")
    return f"{head}{BEGIN}\n{tables()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    parser.add_argument("--file", type=Path, default=REFERENCE, help=f"default: {REFERENCE}")
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    wanted = rewritten(current)
    if args.check:
        if wanted != current:
            print(f"{args.file} is out of date: run python -m gateway.settings_reference")
            return 1
        return 0
    args.file.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
