"""Schema-valid answers the proxy gives in a charger's place (pure).

When a backend's policy says ``answer`` and the owner configured no payload, the proxy
answers with the smallest payload the official response schema accepts: required fields
only; for a status, ``Rejected`` when the schema allows it (the command was not carried
out), else ``NotSupported``, ``Unknown`` or the first value; 0, "" and [] elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from oye_shared.schemas import response_schema

#: Preferred enum values, in order: each says "not done" in its own words.
NOT_DONE = ("Rejected", "NotSupported", "Unknown", "NotImplemented", "Failed", "Idle")


def default_response(version: str, action: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The smallest schema-valid CALLRESULT payload for ``action`` in ``version``."""
    schema = response_schema(version, action)
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    value = _build(schema, schema, moment)
    return value if isinstance(value, dict) else {}


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        path = str(node["$ref"]).removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target[part]
        node = target
    return node


def _build(node: dict[str, Any], root: dict[str, Any], moment: str) -> Any:
    node = _resolve(node, root)
    if "enum" in node:
        values = list(node["enum"])
        return next((v for v in NOT_DONE if v in values), values[0])
    kind = node.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        return {
            name: _build(properties[name], root, moment)
            for name in node.get("required", [])
            if name in properties
        }
    if kind == "array":
        count = int(node.get("minItems", 0))
        return [_build(node.get("items", {}), root, moment) for _ in range(count)]
    if kind == "string":
        if node.get("format") == "date-time":
            return moment
        return "x" * int(node.get("minLength", 0))
    if kind in ("integer", "number"):
        return int(node.get("minimum", 0))
    if kind == "boolean":
        return False
    return None
