"""Chat messages -> prompt text, with or without a chat template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["render_messages"]

logger = logging.getLogger(__name__)


def _plain(messages: Sequence[dict[str, Any]]) -> str:
    # A base model (gemma-3-270m) has no template: system text, blank line, user text.
    return "\n\n".join(str(m.get("content", "")).strip() for m in messages if str(m.get("content", "")).strip())


def render_messages(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[str, bool]:
    """Render ``messages`` for ``tokenizer``.

    Returns:
        ``(text, templated)``: ``templated`` is True when the chat template produced the
        text (it already holds the special tokens, so encode it without adding more).
    """
    if not getattr(tokenizer, "chat_template", None):
        return _plain(messages), False
    try:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja raises TemplateError for e.g. "system role not supported"
        logger.debug("chat template rejected the messages (%s); folding the system prompt into the user turn", exc)
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        rest = [dict(m) for m in messages if m["role"] != "system"]
        if system and rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        text = tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)
    return str(text), True
