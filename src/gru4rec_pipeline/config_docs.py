"""config/README.md, the parameter page, rendered from ``config/schema.yaml``: one row per key.

The schema is the one description of every key (its type, choices, bounds, default and meaning); the page is
derived from it, so a key added to the schema appears on the page when the page is regenerated, and a test keeps
the committed page equal to what this module renders. Regenerate with::

    python -m gru4rec_pipeline.config_docs config/schema.yaml > config/README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

INTRODUCTION = """\
# Configuration

`config/config.yaml` holds every setting with a comment; this page lists each key of its schema,
`config/schema.yaml`, which the workflow validates the configuration against before any job runs (an unknown
key or a bad value stops the run, naming the key, the value and what was expected). This page is generated
from the schema: `python -m gru4rec_pipeline.config_docs config/schema.yaml > config/README.md`.

Change a setting in three ways, from the narrowest to the widest:

- on the command line, after the targets: `snakemake --cores 2 results/recall_bpr.txt --config seed=7`;
- in an overlay file, given after the defaults: `snakemake --cores 2 --configfile config/config.yaml mine.yaml`
  (`config/tiny.yaml` is one: the tiny synthetic preset, for a first look and the tests);
- in `config/config.yaml` itself.

Nested keys are written with dots here (`training.threads`); in YAML they are nested mappings.
"""


def render(schema: dict) -> str:
    """The Markdown page for ``schema`` (a loaded config/schema.yaml)."""
    definitions = schema.get("$defs", {})
    lines = [INTRODUCTION]
    sections: list[tuple[str, list[tuple[str, dict]]]] = [("Top-level keys", [])]
    for key, node in schema["properties"].items():
        node = _resolve(node, definitions)
        if node.get("type") == "object" and "properties" in node:
            sections.append((key, list(_rows(key, node, definitions))))
        else:
            sections[0][1].append((key, node))
    for title, rows in sections:
        if not rows:
            continue
        heading = title if title == "Top-level keys" else f"`{title}`"
        lines.append(f"## {heading}\n")
        description = _resolve(schema["properties"].get(title, {}), definitions).get("description")
        if description:
            lines.append(_one_line(description) + "\n")
        lines.append("| key | values | default | description |")
        lines.append("| --- | --- | --- | --- |")
        for key, node in rows:
            lines.append(
                f"| `{key}` | {_cell(_values(node, definitions))} | {_cell(_default(node))} | "
                f"{_cell(_one_line(node.get('description', '')))} |"
            )
        lines.append("")
    for name, node in definitions.items():
        lines.append(f"## `{name}` (used above)\n")
        lines.append(_one_line(node.get("description", "")) + "\n")
        if "properties" in node:
            lines.append("| key | values | default | description |")
            lines.append("| --- | --- | --- | --- |")
            for key, child in node["properties"].items():
                child = _resolve(child, definitions)
                lines.append(
                    f"| `{key}` | {_cell(_values(child, definitions))} | {_cell(_default(child))} | "
                    f"{_cell(_one_line(child.get('description', '')))} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _rows(prefix: str, node: dict, definitions: dict):
    """(dotted key, schema node) of every leaf below ``node``; a mapping of named entries is one row."""
    for key, child in node.get("properties", {}).items():
        child = _resolve(child, definitions)
        dotted = f"{prefix}.{key}"
        if child.get("type") == "object" and "properties" in child:
            yield from _rows(dotted, child, definitions)
        else:
            yield dotted, child


def _resolve(node: dict, definitions: dict) -> dict:
    reference = node.get("$ref", "")
    if reference.startswith("#/$defs/"):
        return {**definitions[reference.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


# How a type and a bound read in the page's "values" column.
TYPE_WORDS = {"integer": "integer", "number": "number", "string": "string", "boolean": "true or false"}
BOUND_WORDS = {
    "minimum": ">= {}",
    "exclusiveMinimum": "> {}",
    "maximum": "<= {}",
    "exclusiveMaximum": "< {}",
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minItems": "at least {} items",
    "minProperties": "at least {} entries",
    "pattern": "matching `{}`",
}


def _values(node: dict, definitions: dict) -> str:
    """What a key takes: its choices, or its type with its bounds (``integer >= 1``, ``list of ...``)."""
    if "enum" in node:
        return " \\| ".join(f"`{choice}`" for choice in node["enum"])
    bounds = ", ".join(template.format(node[word]) for word, template in BOUND_WORDS.items() if word in node)
    kind = node.get("type")
    if kind == "array" and "items" in node:
        items = _values(_resolve(node["items"], definitions), definitions)
        return f"list of {items}" + (f" ({bounds})" if bounds else "")
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        entry = node["additionalProperties"].get("$ref", "").removeprefix("#/$defs/")
        keys = node.get("propertyNames", {}).get("enum")
        described = f"`{entry}` settings" if entry else "settings"
        return f"mapping of {' / '.join(keys) if keys else 'names'} to {described}" + (f" ({bounds})" if bounds else "")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    words = " or ".join(TYPE_WORDS.get(k, k) for k in kinds)
    return " ".join(part for part in (words, bounds) if part) or "any"


def _default(node: dict) -> str:
    if "default" not in node:
        return "required"
    value = node["default"]
    if value == {}:
        return ""
    return f"`{json.dumps(value)}`"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\\\\|", "\\|")


def main(argv: list[str] | None = None) -> int:
    import yaml

    argv = sys.argv[1:] if argv is None else argv
    schema_path = Path(argv[0] if argv else "config/schema.yaml")
    sys.stdout.write(render(yaml.safe_load(schema_path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
