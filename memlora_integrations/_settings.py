"""The one vocabulary of the integrations' settings, and the old spellings it replaces.

Every LangChain and LlamaIndex class spells a setting the same way:

=================  ==========================================================================
``k``              long-term memories retrieved per read
``score_threshold``  drop memories whose similarity score is below this (None: keep all)
``filters``        metadata filter in the engine's grammar (where a class offers one)
``ingest``         whether finished turns reach long-term memory (``Memory.add``) at all
``infer``          how: extract facts with the model (True) or store the words as given
                   (False); the engine's own ``Memory.add(infer=...)``
``forget``         ``clear``/``reset`` also forgets the scope's long-term memories
=================  ==========================================================================

``k`` and ``score_threshold`` are what LangChain users already type
(``vectorstore.as_retriever(search_kwargs={"k": 4, "score_threshold": 0.5})``); LlamaIndex
has no single common name (``similarity_top_k``, ``similarity_cutoff``), so both frameworks
use LangChain's. ``ingest`` and ``infer`` are two settings, not one: ``ingest=False`` stores
nothing, ``infer=False`` still stores each turn, verbatim.

The old spellings (``search_limit``, ``threshold``, ``save``, ``forget_memories``) are still
accepted, with a ``DeprecationWarning`` naming the new one.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from typing import Any

__all__ = ["RENAMED", "deprecated_alias", "rename_deprecated", "renamed_keywords", "warn_renamed"]

RENAMED: dict[str, str] = {
    "forget_memories": "forget",
    "save": "ingest",
    "search_limit": "k",
    "threshold": "score_threshold",
}
"""Old spelling -> the name every integration now uses."""

# Frames of these packages are skipped when the warning is attributed, so it points at the
# user's line (Python's default filters show a DeprecationWarning only when __main__ caused it)
# however deep pydantic, LangChain or LlamaIndex call into us.
_INTERNAL = frozenset(
    {"asyncio", "concurrent", "contextvars", "langchain", "langchain_classic", "langchain_core", "langgraph",
     "llama_index", "memlora_integrations", "pydantic", "pydantic_core", "threading"}
)


def _stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the integrations and the frameworks."""
    frame = sys._getframe(1)  # warn_renamed, which calls warnings.warn: stacklevel 1
    level = 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _INTERNAL:
        frame = frame.f_back
        level += 1
    return level


def warn_renamed(owner: str, old: str) -> str:
    """Warn that ``owner``'s ``old`` setting is deprecated; return its new name."""
    new = RENAMED[old]
    warnings.warn(
        f"{owner}: {old!r} is deprecated, use {new!r} (same meaning)",
        DeprecationWarning,
        stacklevel=_stacklevel(),
    )
    return new


def rename_deprecated(values: dict[str, Any], owner: str, old_names: Iterable[str]) -> dict[str, Any]:
    """``values`` with each old spelling in ``old_names`` moved to its new name (warning once each).

    Raises:
        TypeError: both the old and the new spelling were given.
    """
    values = dict(values)
    for old in old_names:
        if old not in values:
            continue
        new = RENAMED[old]
        if new in values:
            raise TypeError(f"{owner}: got both {old!r} (deprecated) and {new!r}; pass only {new!r}")
        values[new] = values.pop(old)
        warn_renamed(owner, old)
    return values


def renamed_keywords(
    owner: str, deprecated: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """``current`` (a function's new-name arguments) updated from the old spellings in ``deprecated``.

    For a plain function that takes the old spellings as ``**deprecated``: a new-name
    argument still at its default counts as not given, so only a non-default value next
    to its old spelling is a conflict.

    Raises:
        TypeError: an argument in ``deprecated`` is no old spelling of a name in ``current``,
            or both spellings were given.
    """
    allowed = {old for old, new in RENAMED.items() if new in current}
    if unexpected := sorted(set(deprecated) - allowed):
        raise TypeError(f"{owner}() got unexpected keyword arguments: {', '.join(unexpected)}")
    explicit = {name: value for name, value in current.items() if value != defaults[name]}
    return {**current, **rename_deprecated({**explicit, **deprecated}, owner, sorted(deprecated))}


def deprecated_alias(old: str) -> property:
    """A read/write attribute ``old`` that warns and forwards to its new name."""
    new = RENAMED[old]

    def get(self: Any) -> Any:
        warn_renamed(type(self).__name__, old)
        return getattr(self, new)

    def set_(self: Any, value: Any) -> None:
        warn_renamed(type(self).__name__, old)
        setattr(self, new, value)

    return property(get, set_, doc=f"Deprecated spelling of ``{new}``.")
