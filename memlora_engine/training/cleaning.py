"""Cleaning teacher output into student targets (the paper's data cleaning).

* thinking blocks (``<think>...</think>``) and chatter around the JSON are removed;
* JSON is re-serialised minimally, in the exact compact form the backbone's
  constrained decoder emits (``", "`` and ``": "`` separators, schema key order), so the
  student is trained on text it can produce;
* update output keeps only operations on the *new* facts: Mem0-style teachers echo
  every old memory with ``NONE``; those echoes are dropped (they teach the student to
  copy its input). An operation counts as one on a new fact when its text is one of
  the facts, or when it is ADD/UPDATE/DELETE.

Unusable output raises :class:`~memlora_engine.errors.ModelOutputError` (the builder
counts and skips it).

:func:`prompt_values` inverts :func:`~memlora_engine.prompts.render_prompt`: it reads
the placeholder values back out of rendered messages, which lets a rule-based teacher
(the update labeler) answer the very prompt the engine rendered.
"""

from __future__ import annotations

import json
import re
from functools import cache
from string import Template
from typing import Any

from memlora_engine.errors import ModelOutputError
from memlora_engine.parsing import parse_facts, parse_update_ops, parse_vqa, strip_thinking
from memlora_engine.prompts import template_text
from memlora_engine.types import Event, Operation

__all__ = ["clean_output", "dump_json", "prompt_values"]


def dump_json(value: Any) -> str:
    """Compact JSON exactly as the constrained decoder writes it."""
    return json.dumps(value, ensure_ascii=False)


def _clean_extraction(raw: str) -> str:
    return dump_json({"facts": parse_facts(raw)})


def _clean_update(raw: str, new_facts: list[str] | None) -> str:
    facts = {" ".join(f.split()) for f in new_facts or []}
    kept = []
    for op in parse_update_ops(raw):
        event = (op.event or "").strip().upper()
        if event not in {e.value for e in Event}:
            continue  # unknown events would only teach noise
        text = " ".join((op.text or "").split())
        if event == Event.NONE.value and facts and text not in facts:
            continue  # the teacher echoing an old memory
        item: dict[str, str] = {"id": op.id or "", "text": text, "event": event}
        if event == Event.UPDATE.value and op.old_memory:
            item["old_memory"] = op.old_memory
        kept.append(item)
    return dump_json({"memory": kept})


def _clean_vqa(raw: str) -> str:
    answer, reason = parse_vqa(raw)
    return dump_json({"answer": answer, "reason": reason})


def clean_output(operation: Operation, raw: str, *, new_facts: list[str] | None = None) -> str:
    """The student target for one teacher answer.

    Args:
        operation: the operation the answer is for.
        raw: the teacher's raw text.
        new_facts: (update only) the facts of the prompt; ops on anything else that are
            NONE are dropped.

    Raises:
        ModelOutputError: no usable JSON (extraction, update, vqa) or an empty answer.
    """
    op = Operation(operation)
    if op is Operation.EXTRACTION:
        return _clean_extraction(raw)
    if op is Operation.UPDATE:
        return _clean_update(raw, new_facts)
    if op is Operation.VQA:
        return _clean_vqa(raw)
    text = " ".join(strip_thinking(raw).split())
    if not text:
        raise ModelOutputError("empty generation output", raw=raw, operation=op.value)
    return text


@cache
def _pattern(style: str, operation: Operation, part: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    template = Template(template_text(style, operation, part))
    names = tuple(dict.fromkeys(m.group("named") or m.group("braced") for m in template.pattern.finditer(template.template)
                                if m.group("named") or m.group("braced")))
    sentinel = {name: f"\x00{name}\x00" for name in names}
    rendered = template.substitute(sentinel).strip("\n")
    regex, seen = "", set()
    for piece in re.split(r"(\x00\w+\x00)", rendered):
        if piece.startswith("\x00"):
            name = piece.strip("\x00")
            regex += f"(?P={name})" if name in seen else f"(?P<{name}>.*?)"
            seen.add(name)
        else:
            regex += re.escape(piece)
    return re.compile(f"^{regex}$", re.DOTALL), names


def prompt_values(style: str, operation: Operation, messages: list[dict[str, Any]]) -> dict[str, str]:
    """The placeholder values that :func:`~memlora_engine.prompts.render_prompt` put into ``messages``.

    Raises:
        ValueError: the messages were not rendered from that style's templates.
    """
    by_role = {m["role"]: str(m["content"]) for m in messages}
    values: dict[str, str] = {}
    for part in ("system", "user"):
        pattern, _ = _pattern(style, Operation(operation), part)
        match = pattern.match(by_role.get(part, ""))
        if match is None:
            raise ValueError(f"the {part} message is not a {style}/{Operation(operation).value} prompt")
        values.update(match.groupdict())
    return values
