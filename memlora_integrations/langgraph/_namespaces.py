"""LangGraph namespaces <-> MemLoRA scopes, and LangGraph's value filters and namespace match conditions.

A LangGraph namespace is a tuple of labels (non-empty, no ``.``); a MemLoRA scope is
``(user_id, agent_id, run_id)``. :class:`NamespaceScopes` maps one to the other in both
directions, so a namespace written through the store is listed again from the scopes
the engine holds. Two mappings:

* **dotted** (the default): any namespace is the scope ``user_id=".".join(namespace)``:
  ``("memories", "alice")`` is ``Scope(user_id="memories.alice")``. Labels never contain
  ``.`` (LangGraph refuses them), so the mapping is one-to-one. Scopes that set
  ``agent_id`` or ``run_id`` are not namespaces of this mapping.
* **templates**: namespaces shaped like one of the given templates, whose labels are
  literals or the placeholders ``"{user_id}"``, ``"{agent_id}"``, ``"{run_id}"``:
  with ``[("memories", "{user_id}")]``, ``("memories", "alice")`` is ``Scope(user_id="alice")``,
  the very scope a ``MemLoRAMiddleware(memory, user_id="alice")`` reads and writes.
  Other namespaces are refused. Two templates may not use the same set of
  placeholders (a scope would then have two namespaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.store.base import InvalidNamespaceError, MatchCondition

from memlora_engine import ConfigError, FilterError, Scope, ScopeError

__all__ = ["NamespaceError", "NamespaceScopes", "matches_condition", "matches_filter"]

_PLACEHOLDERS = {"{user_id}": "user_id", "{agent_id}": "agent_id", "{run_id}": "run_id"}


class NamespaceError(ScopeError, InvalidNamespaceError):
    """A namespace that maps to no MemLoRA scope (both a ``ScopeError`` and LangGraph's ``InvalidNamespaceError``)."""


class NamespaceScopes:
    """The two-way mapping between namespaces and scopes (see the module docstring).

    Args:
        templates: namespace templates; None for the dotted mapping.

    Raises:
        ConfigError: an empty template, one without a placeholder or with a placeholder
            twice, a literal label LangGraph would refuse, or two templates with the same
            placeholders.
    """

    def __init__(self, templates: Sequence[Sequence[str]] | None = None) -> None:
        self.templates: tuple[tuple[str, ...], ...] | None = None
        if templates is None:
            return
        if isinstance(templates, (str, tuple)) and templates and isinstance(templates[0], str):
            raise ConfigError(f"namespaces must be a list of templates, e.g. [('memories', '{{user_id}}')], "
                              f"got {templates!r}")
        checked: dict[frozenset[str], tuple[str, ...]] = {}
        for given in templates:
            template = tuple(given)
            fields = [_PLACEHOLDERS[label] for label in template if label in _PLACEHOLDERS]
            literals = [label for label in template if label not in _PLACEHOLDERS]
            if not fields or len(set(fields)) != len(fields):
                raise ConfigError(f"namespace template {template!r} needs each of its placeholders "
                                  "({user_id}, {agent_id}, {run_id}) once, and at least one")
            if any(not isinstance(label, str) or not label or "." in label for label in literals):
                raise ConfigError(f"namespace template {template!r} has a label LangGraph refuses (empty or with '.')")
            key = frozenset(fields)
            if key in checked:
                raise ConfigError(f"namespace templates {checked[key]!r} and {template!r} use the same placeholders: "
                                  "a scope would have two namespaces")
            checked[key] = template
        if not checked:
            raise ConfigError("namespaces must hold at least one template (or be None for the dotted mapping)")
        self.templates = tuple(checked.values())

    def scope(self, namespace: tuple[str, ...]) -> Scope:
        """The scope ``namespace`` maps to.

        Raises:
            NamespaceError: it maps to none (a malformed namespace, no template fits, or an
                id would be too long).
        """
        namespace = tuple(namespace)
        if not namespace or any(not isinstance(label, str) or not label or "." in label for label in namespace):
            raise NamespaceError(f"namespace {namespace!r} is not one LangGraph accepts: a non-empty tuple of "
                                 "non-empty labels without '.'")
        try:
            if self.templates is None:
                return Scope(user_id=".".join(namespace))
            for template in self.templates:
                ids = _fill(template, namespace)
                if ids is not None:
                    return Scope(**ids)
        except ScopeError as exc:
            raise NamespaceError(f"namespace {namespace!r} maps to no MemLoRA scope: {exc}") from exc
        raise NamespaceError(f"namespace {namespace!r} fits none of this store's namespace templates "
                             f"{list(self.templates)!r}")

    def namespace(self, scope: Scope) -> tuple[str, ...] | None:
        """The namespace of ``scope``, or None when the scope is not one of this mapping's."""
        ids = scope.as_dict()
        if self.templates is None:
            if set(ids) != {"user_id"}:
                return None
            labels = tuple(ids["user_id"].split("."))
            return labels if all(labels) else None
        for template in self.templates:
            if {_PLACEHOLDERS[label] for label in template if label in _PLACEHOLDERS} == set(ids):
                labels = tuple(ids[_PLACEHOLDERS[label]] if label in _PLACEHOLDERS else label for label in template)
                # an id with a '.' (written outside the store) is no label LangGraph accepts
                return labels if all("." not in label for label in labels) else None
        return None


def _fill(template: tuple[str, ...], namespace: tuple[str, ...]) -> dict[str, str] | None:
    if len(template) != len(namespace):
        return None
    ids: dict[str, str] = {}
    for pattern, label in zip(template, namespace):
        if pattern in _PLACEHOLDERS:
            ids[_PLACEHOLDERS[pattern]] = label
        elif pattern != label:
            return None
    return ids


def matches_condition(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether ``namespace`` matches a prefix or suffix condition (``"*"`` matches any label)."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise ValueError(f"unsupported match type: {condition.match_type!r}")
    return all(pattern == "*" or label == pattern for label, pattern in pairs)


def matches_filter(value: dict[str, Any], filter_: dict[str, Any]) -> bool:
    """Whether an item's value passes a LangGraph search filter.

    Each key is a top-level field; its condition is a value to equal (a dict matches
    nested fields, a list matches element-wise) or operators ``$eq``, ``$ne``, ``$gt``,
    ``$gte``, ``$lt``, ``$lte``, as LangGraph's stores compare them.
    """
    return all(_compare(value.get(key), wanted) for key, wanted in filter_.items())


def _compare(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(actual, op, operand) for op, operand in wanted.items())
        return isinstance(actual, dict) and all(_compare(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (isinstance(actual, (list, tuple)) and len(actual) == len(wanted)
                and all(_compare(a, w) for a, w in zip(actual, wanted)))
    return bool(actual == wanted)


def _operator(actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(actual == operand)
    if op == "$ne":
        return bool(actual != operand)
    if op not in ("$gt", "$gte", "$lt", "$lte"):
        raise FilterError(f"unsupported filter operator {op!r}: use $eq, $ne, $gt, $gte, $lt or $lte")
    try:
        left, right = float(actual), float(operand)
    except (TypeError, ValueError):
        return False  # a missing or non-numeric field is not in any range
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[op]
