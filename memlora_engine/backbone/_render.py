"""Chat messages -> prompt text, with or without a chat template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["PLAIN_CHAT_TEMPLATE", "render_messages"]

logger = logging.getLogger(__name__)


# What ``_plain`` renders (with the BOS token the tokenizer then adds), as a Jinja chat template for servers
# that render prompts themselves (vLLM, SGLang, llama.cpp: ``--chat-template``), so a model without a template
# sees the same tokens there as in process. tests/test_adapters_export.py checks the two agree.
PLAIN_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(sep='') -%}"
    "{%- for message in messages -%}"
    "{%- set text = (message['content'] if message['content'] is string else '') | trim -%}"
    "{%- if text -%}{{- ns.sep -}}{{- text -}}{%- set ns.sep = '\\n\\n' -%}{%- endif -%}"
    "{%- endfor -%}"
)


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
