"""Converting between LangChain messages and the engine's ``{"role", "content"}`` dicts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    BaseMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_chunk_to_message,
    message_to_dict,
    messages_from_dict,
)

__all__ = ["exchange_texts", "from_engine", "image_parts", "text_of", "to_engine", "to_prompt"]

logger = logging.getLogger(__name__)

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
# By class, so chunks (AIMessageChunk is an AIMessage whose type is "AIMessageChunk") keep their role.
_ROLE_CLASSES: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
)
_CLASSES: dict[str, type[BaseMessage]] = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}
# Content-part types that hold an image (LangChain standard blocks, OpenAI chat and responses).
_IMAGE_TYPES = ("image", "image_url", "input_image")


def text_of(message: BaseMessage) -> str:
    """The message's text; multimodal parts other than text are left out."""
    return message.text


def image_parts(message: BaseMessage) -> list[dict[str, Any]]:
    """The message's image content parts, as given: the engine's ``add`` reads all these shapes."""
    if isinstance(message.content, str):
        return []
    return [p for p in message.content if isinstance(p, dict) and p.get("type") in _IMAGE_TYPES]


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    for cls, role in _ROLE_CLASSES:
        if isinstance(message, cls):
            return role
    return _ROLES.get(message.type.removesuffix("MessageChunk").lower(), "user")


def to_engine(message: BaseMessage) -> dict[str, Any]:
    """An engine message dict that also carries the full LangChain message.

    The text goes to ``content`` (what extraction reads and what a person sees in the
    session database); ``extra["lc"]`` keeps ids, tool calls and metadata so the
    message comes back from the session buffer exactly as it went in. A streamed
    chunk (``AIMessageChunk``, what ``RunnableWithMessageHistory.stream()`` saves) is
    stored as the whole message it adds up to.
    """
    if isinstance(message, BaseMessageChunk):
        message = message_chunk_to_message(message)
    out: dict[str, Any] = {"role": _role(message), "content": text_of(message)}
    if message.name:
        out["name"] = message.name
    serialized = message_to_dict(message)
    try:
        json.dumps(serialized)
    except (TypeError, ValueError):
        logger.debug("message %r is not JSON-serialisable; its role and text are kept", message.id)
    else:
        out["extra"] = {"lc": serialized}
    return out


def from_engine(message: dict[str, Any]) -> BaseMessage:
    """Rebuild the LangChain message stored by :func:`to_engine` (or any role/content dict)."""
    extra = message.get("extra") or {}
    if isinstance(extra, dict) and isinstance(extra.get("lc"), dict):
        return messages_from_dict([extra["lc"]])[0]
    role, content, name = message["role"], message["content"], message.get("name")
    cls = _CLASSES.get(role)
    if cls is None:
        return ChatMessage(role=role, content=content, name=name)
    return cls(content=content, name=name)


def to_prompt(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Chat messages as a generator prompt: system/user/assistant roles, text only.

    A small local model has no tool role, so tool results are shown as user turns,
    and an assistant's tool calls as the JSON it decodes them as
    (``{"tool": ..., "arguments": ...}``, see :mod:`memlora_engine.tool_calls`).
    """
    out = []
    for message in messages:
        role = _role(message)
        content = text_of(message)
        if isinstance(message, AIMessage) and message.tool_calls and not content.strip():
            content = "\n".join(
                json.dumps({"tool": call["name"], "arguments": call["args"]}) for call in message.tool_calls
            )
        elif role == "tool":
            role, content = "user", f"Tool result: {content}"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": content})
    return out


def exchange_texts(messages: Iterable[BaseMessage]) -> list[dict[str, Any]]:
    """The user and assistant turns of ``messages`` as engine dicts, for ``Memory.add``.

    A message that carries images keeps them: its content is then the text part
    followed by the image parts, so ``add`` stores each image and a vision model sees it.
    """
    out = []
    for message in messages:
        role = _role(message)
        text = text_of(message).strip()
        images = image_parts(message)
        if role in ("user", "assistant") and (text or images):
            content: Any = [{"type": "text", "text": text}, *images] if images else text
            entry: dict[str, Any] = {"role": role, "content": content}
            if message.name:
                entry["name"] = message.name
            out.append(entry)
    return out
