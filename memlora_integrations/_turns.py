"""Ingesting finished chat turns into long-term memory: the one implementation every integration uses.

Framework-neutral: each integration converts its messages to the engine's dicts
(``{"role", "content"}``; ``content`` a string, or a list of parts with the text part
first and then the images) and hands them here. A *turn* is a run of user messages and
what follows them up to the next user message; the model extracts facts from a turn
with one ``Memory.add`` call, so it sees the question and the answer together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from memlora_engine import AddResult, Memory

__all__ = ["has_conversation", "ingest_turn", "ingest_turns", "split_turns"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]


def split_turns(messages: Iterable[Message]) -> list[list[Message]]:
    """Group messages into turns: a user message after any other role starts a new one.

    Leading non-user messages (a reply whose question came earlier) form their own turn.
    """
    turns: list[list[Message]] = []
    for message in messages:
        if not turns or message["role"] == "user" and any(m["role"] != "user" for m in turns[-1]):
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def _says_something(message: Message) -> bool:
    """True when the message has non-blank text or any non-text part (an image)."""
    content = message.get("content")
    if isinstance(content, str):
        return bool(content.strip())
    return any(
        not (isinstance(part, dict) and part.get("type") == "text") or str(part.get("text") or "").strip()
        for part in content or ()
    )


def has_conversation(messages: Iterable[Message]) -> bool:
    """True when user or assistant messages hold text or images (what extraction reads)."""
    return any(m["role"] in ("user", "assistant") and _says_something(m) for m in messages)


def ingest_turn(
    memory: Memory,
    turn: Sequence[Message],
    *,
    scope: dict[str, str],
    metadata: dict[str, Any] | None = None,
    infer: bool = True,
) -> AddResult | None:
    """Remember one turn with one ``Memory.add``; None (no model call) when it says nothing."""
    if not has_conversation(turn):
        return None
    result = memory.add(list(turn), metadata=metadata, infer=infer, **scope)
    logger.debug("ingested a turn of %d messages -> %d memory events", len(turn), len(result))
    return result


def ingest_turns(
    memory: Memory,
    messages: Iterable[Message],
    *,
    scope: dict[str, str],
    metadata: dict[str, Any] | None = None,
    infer: bool = True,
    complete_only: bool = False,
) -> list[AddResult]:
    """Remember ``messages`` with one ``Memory.add`` per turn (see :func:`split_turns`).

    Args:
        memory: the engine.
        messages: engine message dicts, oldest first.
        scope: the scope ids (``user_id``/``agent_id``/``run_id``).
        metadata: stored with every memory created.
        infer: extract facts with the model (False: store the words as given).
        complete_only: skip turns that do not end with an assistant message (a question
            still waiting for its reply).

    Returns:
        The engine's ``AddResult`` per ingested turn.
    """
    results = []
    for turn in split_turns(messages):
        if complete_only and turn[-1]["role"] != "assistant":
            continue
        result = ingest_turn(memory, turn, scope=scope, metadata=metadata, infer=infer)
        if result is not None:
            results.append(result)
    return results
