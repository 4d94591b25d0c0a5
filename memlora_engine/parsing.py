"""Tolerant parsing of what small models emit.

Small models wrap JSON in thinking blocks, code fences and chatter, use single
quotes, and get cut off at the token limit. :func:`load_json` strips the thinking,
then lets ``json_repair`` recover the object; output that still does not have the
expected shape raises :class:`~memlora_engine.errors.ModelOutputError` carrying
the raw text, so the engine can count it and apply nothing.

The JSON schemas the outputs must follow are in the operation registry
(:mod:`memlora_engine.operations`); ``EXTRACTION_SCHEMA``, ``UPDATE_SCHEMA`` and
``VQA_SCHEMA`` stay importable from here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import json_repair

from memlora_engine.errors import ModelOutputError
from memlora_engine.types import Operation

__all__ = [  # the schemas resolve through __getattr__ below
    "EXTRACTION_SCHEMA",  # noqa: F822
    "UPDATE_SCHEMA",  # noqa: F822
    "VQA_SCHEMA",  # noqa: F822
    "RawOp",
    "collapse_repeated_items",
    "load_json",
    "parse_facts",
    "parse_update_ops",
    "parse_vqa",
    "strip_thinking",
]

_SCHEMAS = ("EXTRACTION_SCHEMA", "UPDATE_SCHEMA", "VQA_SCHEMA")


def __getattr__(name: str) -> dict[str, Any]:
    # The schemas live in the operation registry, which imports the parsers below;
    # they stay importable from here, resolved on first use.
    if name in _SCHEMAS:
        from memlora_engine import operations

        value: dict[str, Any] = getattr(operations, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)


def strip_thinking(text: str) -> str:
    """Remove ``<think>...</think>``-style blocks; an unclosed one swallows the rest."""
    text = _THINK_BLOCK.sub("", text)
    # A stray closing tag: everything before it was thinking whose opening tag was
    # in the prompt (some chat templates open the block for the model).
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opened = _THINK_OPEN.search(text)
    if opened is not None:
        text = text[: opened.start()]
    return text.strip()


def _cut_inside_string(text: str) -> bool:
    """True when ``text`` ends inside an open JSON string (the output was truncated)."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return False
    in_string = False
    quote = ""
    escaped = False
    for ch in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                in_string = False
        elif ch in "\"'":
            in_string, quote = True, ch
    return in_string


def load_json(raw: str, *, operation: Operation | None = None) -> tuple[Any, bool]:
    """Recover a JSON value from model output.

    Returns ``(value, truncated)``; ``truncated`` says the text ended inside a string,
    so the last list element is a fragment. Raises ``ModelOutputError`` when no JSON
    object or array can be recovered.
    """
    op = operation.value if operation is not None else None
    text = strip_thinking(raw)
    try:
        value = json.loads(text)
        if not isinstance(value, (dict, list)):  # "null", "5", "true": valid JSON, not an answer
            raise ModelOutputError(f"no JSON object in {op or 'model'} output", raw=raw, operation=op)
        return value, False
    except RecursionError as exc:  # nesting deeper than any real answer
        raise ModelOutputError(f"{op or 'model'} output is nested too deeply", raw=raw, operation=op) from exc
    except (json.JSONDecodeError, ValueError):
        pass
    try:
        value = json_repair.loads(text)
    except (Exception, RecursionError) as exc:  # json_repair raises assorted errors on hostile input
        raise ModelOutputError(f"unparseable {op or 'model'} output", raw=raw, operation=op) from exc
    if not isinstance(value, (dict, list)) or value in ({}, []) and not re.search(r"[\[{]", text):
        raise ModelOutputError(f"no JSON found in {op or 'model'} output", raw=raw, operation=op)
    return value, _cut_inside_string(text)


def parse_facts(raw: str) -> list[str]:
    """Parse extraction output (``{"facts": [...]}``, or a bare list) into fact strings.

    Non-string facts are dropped; numbers are kept as text. A fragment cut off by the
    token limit is dropped rather than stored half-written.
    """
    value, truncated = load_json(raw, operation=Operation.EXTRACTION)
    if isinstance(value, dict):
        if "facts" not in value or not isinstance(value["facts"], list):
            raise ModelOutputError(
                'extraction output has no "facts" list', raw=raw, operation=Operation.EXTRACTION.value
            )
        items = value["facts"]
    else:
        items = value
    if truncated and items:
        items = items[:-1]
    facts: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            continue  # NaN/Infinity are not facts
        fact = " ".join(str(item).split())
        if fact and fact not in facts:
            facts.append(fact)
    return facts


@dataclass(frozen=True)
class RawOp:
    """One memory operation as the model wrote it, before validation."""

    id: str | None
    text: str | None
    event: str | None
    old_memory: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "event": self.event, "old_memory": self.old_memory}


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).strip()


def parse_update_ops(raw: str) -> list[RawOp]:
    """Parse update output (``{"memory": [...]}``, or a bare list) into raw ops.

    Items that are not objects are kept as empty ops so they are counted as
    rejected; a final op cut off mid-string is dropped.
    """
    value, truncated = load_json(raw, operation=Operation.UPDATE)
    if isinstance(value, dict):
        items = value.get("memory")
        if not isinstance(items, list):
            raise ModelOutputError(
                'update output has no "memory" list', raw=raw, operation=Operation.UPDATE.value
            )
    else:
        items = value
    if truncated and items:
        items = items[:-1]
    ops = []
    for item in items:
        if not isinstance(item, dict):
            ops.append(RawOp(None, None, None, None))
            continue
        ops.append(
            RawOp(
                id=_as_text(item.get("id")),
                text=_as_text(item.get("text")),
                event=_as_text(item.get("event")),
                old_memory=_as_text(item.get("old_memory")),
            )
        )
    return ops


def parse_vqa(raw: str) -> tuple[str, str]:
    """Parse vqa output (``{"answer": ..., "reason": ...}``) into ``(answer, reason)``.

    A missing reason is ``""``; an answer given as a number is kept as text; a reason
    cut off by the token limit is kept as far as it got. Output with no answer, or cut
    off inside the answer, raises :class:`~memlora_engine.errors.ModelOutputError`.
    """
    value, truncated = load_json(raw, operation=Operation.VQA)
    if isinstance(value, list):  # [{"answer": ...}]: a model that wrapped its object
        value = next((item for item in value if isinstance(item, dict)), None)
    answer = value.get("answer") if isinstance(value, dict) else None
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ModelOutputError('vqa output has no "answer"', raw=raw, operation=Operation.VQA.value)
    reason = value.get("reason") if isinstance(value, dict) else None
    if truncated and reason is None:  # the text ended inside the answer: it is a fragment
        raise ModelOutputError("vqa output was cut off inside its answer", raw=raw, operation=Operation.VQA.value)
    reason_text = " ".join(str(reason).split()) if isinstance(reason, (str, int, float)) else ""
    return " ".join(str(answer).split()), reason_text


_ITEM_SEPARATOR = re.compile(r"\s*[,;]\s*")


def collapse_repeated_items(text: str) -> tuple[str, bool]:
    """``text`` with a looping list cut back to its distinct items, and whether it looped.

    Asked for a list, a small model can fall into a loop ("painting, drawing, painting,
    drawing, painting, ...") until its token cap, which cuts the last item short; on
    LoCoMo conv-26 the shipped generation expert did so in 7 of 199 answers. Items are
    the comma- or semicolon-separated parts of ``text``; it loops when an item comes
    back (ignoring case, spacing and a final period). The distinct items are then kept
    in their first order, joined by ", ", and a last item that only begins a kept one
    (cut by the cap) is dropped. Any other text is returned as it is.
    """
    items = [item for item in _ITEM_SEPARATOR.split(text.strip()) if item]
    keys = [" ".join(item.lower().split()).rstrip(".") for item in items]
    if len(items) < 3 or len(set(keys)) == len(keys):
        return text, False
    kept: dict[str, str] = {}
    for item, key in zip(items, keys):
        kept.setdefault(key, item)
    last = keys[-1]
    if keys.index(last) == len(keys) - 1 and any(k != last and k.startswith(last) for k in kept):
        del kept[last]  # the cap cut the loop inside an item it had written before
    return ", ".join(kept.values()), True
