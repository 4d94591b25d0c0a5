"""Converting LlamaIndex chat messages to the engine's message dicts and back.

Shared by the memory, the memory block and the LLM. Only LlamaIndex types and
plain dicts cross this boundary; the engine never sees a LlamaIndex object.
"""

from __future__ import annotations

import logging
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock, ToolCallBlock

__all__ = [
    "engine_role",
    "from_session",
    "has_tool_calls",
    "is_reply",
    "message_text",
    "to_engine",
    "to_engine_turn",
    "to_session",
]

logger = logging.getLogger(__name__)

_EXTRA_KEY = "llama_index"

# LlamaIndex roles -> the roles the engine (and a Generator) understands.
_ENGINE_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}


def message_text(message: ChatMessage) -> str:
    """The text blocks of ``message`` joined (images, tool calls and the like are left out)."""
    return "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock) and b.text)


def _image_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """The message's images as engine image parts: the bytes, or the path or URL for the engine to read."""
    parts = []
    for block in message.blocks:
        if isinstance(block, ImageBlock):
            if block.image is not None:
                source: Any = block.resolve_image().read()  # the block keeps them base64-encoded
            elif block.path or block.url:
                source = str(block.path or block.url)
            else:
                continue
            parts.append({"type": "image", "image": source})
    return parts


def engine_role(message: ChatMessage) -> str:
    return _ENGINE_ROLES.get(MessageRole(message.role), "user")


def has_tool_calls(message: ChatMessage) -> bool:
    return any(isinstance(b, ToolCallBlock) for b in message.blocks) or bool(
        message.additional_kwargs.get("tool_calls")
    )


def is_reply(message: ChatMessage) -> bool:
    """True for an assistant message that ends a turn: it has text and asks for no tool."""
    return engine_role(message) == "assistant" and bool(message_text(message).strip()) and not has_tool_calls(message)


def to_engine(message: ChatMessage) -> dict[str, Any]:
    """``{"role", "content"}`` with the message's text (no LlamaIndex payload)."""
    return {"role": engine_role(message), "content": message_text(message)}


def to_engine_turn(message: ChatMessage) -> dict[str, Any]:
    """:func:`to_engine` for ``add``: a message with images gets its text part then its image parts.

    A speaker's name in ``additional_kwargs["name"]`` (where LlamaIndex's OpenAI LLM
    takes the OpenAI message ``name`` from) becomes the engine message's ``name``: the
    speaker the extraction model sees ("Alice: ..." instead of "user: ...").
    """
    row = to_engine(message)
    name = message.additional_kwargs.get("name")
    if isinstance(name, str) and name.strip():
        row["name"] = name.strip()
    images = _image_parts(message)
    if images:
        row["content"] = [{"type": "text", "text": row["content"]}, *images]
    return row


def to_session(message: ChatMessage, **flags: Any) -> dict[str, Any]:
    """A session-buffer row that restores the exact ``ChatMessage`` (tool calls included)."""
    row = to_engine(message)
    try:
        payload: dict[str, Any] = message.model_dump(mode="json")
    except (TypeError, ValueError) as exc:  # a non-JSON additional_kwargs value: keep role and text
        logger.warning("chat message kept as text only; it does not serialize to JSON: %s", exc)
        payload = {"role": MessageRole(message.role).value, "content": row["content"]}
    row["extra"] = {_EXTRA_KEY: payload, **flags}
    return row


def from_session(row: dict[str, Any]) -> ChatMessage:
    """The ``ChatMessage`` stored by :func:`to_session` (or rebuilt from role and text)."""
    payload = (row.get("extra") or {}).get(_EXTRA_KEY)
    if isinstance(payload, dict):
        try:
            return ChatMessage.model_validate(payload)
        except ValueError as exc:
            logger.warning("stored chat message could not be restored exactly: %s", exc)
    return ChatMessage(role=row["role"], content=row["content"])
