"""Translate MemLoRA metadata filters into Chroma ``where`` clauses.

Grammar (keys are metadata fields; operators may be written with or without ``$``)::

    {"topic": "food"}                          equality
    {"topic": {"in": ["food", "travel"]}}      membership (also "nin")
    {"year": {"gte": 2020, "lt": 2024}}        numeric range (eq, ne, gt, gte, lt, lte)
    {"AND": [f1, f2]}  /  {"OR": [f1, f2]}     combinations, nestable
    {"a": 1, "b": 2}                           several keys mean AND
"""

from __future__ import annotations

from typing import Any

from memlora_engine.errors import FilterError

__all__ = ["to_chroma_where"]

_COMPARISONS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}
_LOGICAL = {"and": "$and", "or": "$or"}
_SCALARS = (str, int, float, bool)


def _combine(op: str, clauses: list[dict[str, Any]]) -> dict[str, Any]:
    # Chroma rejects $and/$or with fewer than two members.
    return clauses[0] if len(clauses) == 1 else {op: clauses}


def _field(key: str, condition: Any) -> dict[str, Any]:
    if not isinstance(key, str) or not key or key.startswith("_"):
        raise FilterError(f"cannot filter on {key!r}: keys are non-empty and may not start with '_'")
    if isinstance(condition, _SCALARS):
        return {key: {"$eq": condition}}
    if not isinstance(condition, dict) or not condition:
        raise FilterError(f"filter on {key!r} must be a value or a non-empty operator dict, got {condition!r}")
    clauses = []
    for raw_op, value in condition.items():
        op = str(raw_op).lower().lstrip("$")
        if op not in _COMPARISONS:
            raise FilterError(f"unknown filter operator {raw_op!r} on {key!r}; use one of {sorted(_COMPARISONS)}")
        if op in ("in", "nin"):
            if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, _SCALARS) for v in value):
                raise FilterError(f"{raw_op!r} on {key!r} needs a non-empty list of plain values")
            value = list(value)
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(f"{raw_op!r} on {key!r} needs a number, got {value!r}")
        elif not isinstance(value, _SCALARS):
            raise FilterError(f"{raw_op!r} on {key!r} needs a plain value, got {value!r}")
        clauses.append({key: {f"${op}": value}})
    return _combine("$and", clauses)


def to_chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the Chroma ``where`` for ``filters`` (None for no filter)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise FilterError(f"filters must be a dict, got {type(filters).__name__}")
    if not filters:
        return None
    clauses = []
    for key, condition in filters.items():
        logical = _LOGICAL.get(str(key).lower().lstrip("$")) if isinstance(key, str) else None
        if logical is not None:
            if not isinstance(condition, (list, tuple)) or not condition:
                raise FilterError(f"{key!r} needs a non-empty list of filters")
            members = [to_chroma_where(member) for member in condition]
            if any(m is None for m in members):
                raise FilterError(f"{key!r} members must be non-empty filters")
            clauses.append(_combine(logical, members))  # type: ignore[arg-type]
        else:
            clauses.append(_field(key, condition))
    return _combine("$and", clauses)
