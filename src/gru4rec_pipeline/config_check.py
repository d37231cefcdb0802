"""The config checked against ``config/schema.yaml``, with a one-line answer naming key, value and expectation.

A failed validation in Snakemake prints the schema and the offending instance, which for an unknown
top-level key is the whole config (hundreds of lines) after the one useful line. The workflow checks
the config with :func:`config_problem` first and stops with its message alone.
"""

from __future__ import annotations

import math

# How a JSON-schema keyword's bound reads after "expected".
BOUNDS = {
    "minimum": "a number >= {}",
    "exclusiveMinimum": "a number > {}",
    "maximum": "a number <= {}",
    "exclusiveMaximum": "a number < {}",
    "minLength": "a string of at least {} characters",
    "maxLength": "a string of at most {} characters",
    "minItems": "a list of at least {} items",
    "minProperties": "at least {} entries",
    "pattern": "a string matching {}",
}
TYPES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys to values",
}
MAX_VALUE_CHARS = 80


def config_problem(config: dict, schema: dict) -> str | None:
    """What is wrong with ``config`` under ``schema`` (the most relevant error), or None when it is valid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    not_finite = _non_finite_number(config)
    if not_finite is not None:
        # JSON Schema's bounds hold for NaN (every comparison with it is false), so it would pass them.
        key, value = not_finite
        return f"config key '{key}': got {value}, expected a finite number"
    error = best_match(Draft202012Validator(schema).iter_errors(config))
    return None if error is None else describe(error)


def _non_finite_number(value, path=()) -> tuple[str, float] | None:
    """The key and value of the first NaN or infinity in ``value`` (YAML's .nan, .inf), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return _key(path), value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite_number(child, (*path, key))
        if found is not None:
            return found
    return None


def _key(path) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _listed(values) -> str:
    return ", ".join(str(value) for value in values)


def describe(error) -> str:
    """``config key 'a.b': got V, expected E`` (and the key's description from the schema on a second line)
    for a jsonschema ValidationError."""
    path = list(error.absolute_path)
    keyword, schema, value = error.validator, error.schema, error.instance
    if keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        unknown = sorted(str(name) for name in value if name not in allowed)
        others = f" (and {_listed(unknown[1:])})" if len(unknown) > 1 else ""
        return f"config key '{_key([*path, unknown[0]])}'{others}: unknown key; expected one of: {_listed(allowed)}"
    if "propertyNames" in error.schema_path:
        return f"config key '{_key([*path, value])}': unknown key; expected one of: {_listed(schema.get('enum', []))}"
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"config key '{_key([*path, missing])}' is missing; it is required"
    if keyword == "enum":
        expected = f"one of: {_listed(error.validator_value)}"
    elif keyword == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(TYPES.get(kind, kind) for kind in kinds)
    elif keyword in BOUNDS:
        expected = BOUNDS[keyword].format(error.validator_value)
    else:
        expected = error.message
    description = " ".join(str(schema.get("description", "")).split())
    about = f"\nconfig/schema.yaml on {_key(path)}: {description}" if description else ""
    return f"config key '{_key(path)}': got {_shown(value)}, expected {expected}{about}"
