"""A small JSON schema check for the answers of grammar-constrained models: the keywords the tests'
schemas use (type, properties, required, additionalProperties, items, enum, maxLength)."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` (parsed JSON) matches `schema`."""
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(value, _TYPES[kind]):
            return False
        if kind in ("integer", "number") and isinstance(value, bool):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        return False
    if isinstance(value, list) and "items" in schema:
        return all(conforms(item, schema["items"]) for item in value)
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(conforms(value[name], sub) for name, sub in properties.items() if name in value)
    return True
