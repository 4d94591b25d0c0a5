"""Normalising the many shapes of "messages" callers pass to ``add``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memlora_engine.errors import InvalidInputError

__all__ = ["check_text", "normalize_messages", "render_conversation"]

_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
    "chatbot": "assistant",
}


def check_text(text: str, what: str = "message content") -> str:
    """Reject text no store can write (lone surrogates, e.g. from a bad decode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not valid Unicode: {exc.reason} at position {exc.start}") from exc
    return text


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return check_text(content)
    if isinstance(content, list):  # multimodal parts: keep the text ones
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return check_text("\n".join(parts))
    if content is None:
        return ""
    raise InvalidInputError(f"message content must be text, got {type(content).__name__}")


def _one(message: Any) -> dict[str, str]:
    if isinstance(message, str):
        return {"role": "user", "content": check_text(message)}
    if isinstance(message, dict):
        role, content, name = message.get("role", "user"), message.get("content"), message.get("name")
    elif hasattr(message, "content") and (hasattr(message, "role") or hasattr(message, "type")):
        # LlamaIndex ChatMessage (.role enum) or LangChain BaseMessage (.type)
        role = getattr(message, "role", None) or getattr(message, "type", None)
        role = getattr(role, "value", role)
        content, name = message.content, getattr(message, "name", None)
    else:
        raise InvalidInputError(
            f"a message must be a str, a {{'role', 'content'}} dict or a chat message object, got {type(message).__name__}"
        )
    if not isinstance(role, str) or role.lower() not in _ROLE_ALIASES:
        raise InvalidInputError(f"unknown message role {role!r}")
    out = {"role": _ROLE_ALIASES[role.lower()], "content": _content_text(content)}
    if isinstance(name, str) and name.strip():
        out["name"] = check_text(name.strip(), "message name")
    return out


def normalize_messages(messages: Any) -> list[dict[str, str]]:
    """Return ``[{"role", "content"[, "name"]}]`` for a str, a message, or a sequence of them."""
    if isinstance(messages, (bytes, bytearray, memoryview)):
        raise InvalidInputError("messages must be text, got bytes: decode them first")
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence):
        if not isinstance(messages, (str, dict)) and not hasattr(messages, "content"):
            raise InvalidInputError(f"messages must be a str, a message or a list of them, got {type(messages).__name__}")
        messages = [messages]
    return [_one(m) for m in messages]


def render_conversation(messages: Sequence[dict[str, str]]) -> str:
    """``speaker: text`` lines for the extraction prompt; system and tool messages are left out."""
    lines = []
    for m in messages:
        if m["role"] not in ("user", "assistant") or not m["content"].strip():
            continue
        lines.append(f"{m.get('name') or m['role']}: {m['content'].strip()}")
    return "\n".join(lines)
