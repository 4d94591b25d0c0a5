"""Translate MemLoRA metadata filters into Chroma ``where`` clauses.

Grammar (keys are metadata fields; operators may be written with or without ``$``)::

    {"topic": "food"}                          equality
    {"topic": {"in": ["food", "travel"]}}      membership (also "nin")
    {"year": {"gte": 2020, "lt": 2024}}        numeric range (eq, ne, gt, gte, lt, lte)
    {"AND": [f1, f2]}  /  {"OR": [f1, f2]}     combinations, nestable
    {"a": 1, "b": 2}                           several keys mean AND

Bounds: at most :data:`MAX_CLAUSES` comparisons in all, nested at most
:data:`MAX_DEPTH` AND/OR levels deep, and at most :data:`MAX_VALUES` values in one
``in``/``nin`` list. Larger filters are refused with :class:`FilterError` before they
reach the store: Chroma crashes the process (SIGSEGV) on some ten thousand OR
clauses, and deep nesting would otherwise end in a raw ``RecursionError``.
"""

from __future__ import annotations

from typing import Any

from memlora_engine.errors import FilterError

__all__ = ["MAX_CLAUSES", "MAX_DEPTH", "MAX_VALUES", "to_chroma_where"]

MAX_CLAUSES = 256
"""The most comparisons one filter may hold."""
MAX_DEPTH = 16
"""The most AND/OR levels one filter may nest."""
MAX_VALUES = 1024
"""The most values of one ``in``/``nin`` list."""

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
            if len(value) > MAX_VALUES:
                raise FilterError(f"{raw_op!r} on {key!r} has {len(value)} values; at most {MAX_VALUES}")
            value = list(value)
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(f"{raw_op!r} on {key!r} needs a number, got {value!r}")
        elif not isinstance(value, _SCALARS):
            raise FilterError(f"{raw_op!r} on {key!r} needs a plain value, got {value!r}")
        clauses.append({key: {f"${op}": value}})
    return _combine("$and", clauses)


def to_chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the Chroma ``where`` for ``filters`` (None for no filter).

    Raises:
        FilterError: a malformed filter, or one past the bounds in the module docstring.
    """
    return _translate(filters, depth=0, budget=[MAX_CLAUSES])


def _translate(filters: Any, *, depth: int, budget: list[int]) -> dict[str, Any] | None:
    """``budget[0]``: comparisons still allowed (shared by the whole filter)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise FilterError(f"filters must be a dict, got {type(filters).__name__}")
    if not filters:
        return None
    if depth > MAX_DEPTH:
        raise FilterError(f"filter nested deeper than {MAX_DEPTH} AND/OR levels")
    clauses = []
    for key, condition in filters.items():
        logical = _LOGICAL.get(str(key).lower().lstrip("$")) if isinstance(key, str) else None
        if logical is not None:
            if not isinstance(condition, (list, tuple)) or not condition:
                raise FilterError(f"{key!r} needs a non-empty list of filters")
            if len(condition) > budget[0]:
                raise FilterError(f"filter with more than {MAX_CLAUSES} comparisons")
            members = [_translate(member, depth=depth + 1, budget=budget) for member in condition]
            if any(m is None for m in members):
                raise FilterError(f"{key!r} members must be non-empty filters")
            clauses.append(_combine(logical, members))  # type: ignore[arg-type]
        else:
            budget[0] -= len(condition) if isinstance(condition, dict) else 1
            if budget[0] < 0:
                raise FilterError(f"filter with more than {MAX_CLAUSES} comparisons")
            clauses.append(_field(key, condition))
    return _combine("$and", clauses)
