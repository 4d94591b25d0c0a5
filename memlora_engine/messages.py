"""Normalising the many shapes of "messages" callers pass to ``add``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memlora_engine.errors import InvalidInputError
from memlora_engine.images import ImageInput

__all__ = ["check_text", "normalize_messages", "one_system_message", "render_conversation", "spoken_messages"]

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


def _image_part(part: Any) -> ImageInput | None:
    """The image of one content part, in any of the shapes chat libraries use; else None."""
    if isinstance(part, (bytes, bytearray, memoryview)) or (hasattr(part, "save") and hasattr(part, "mode")):
        return ImageInput(part)  # raw bytes or a PIL image
    if not isinstance(part, dict):
        if getattr(part, "block_type", None) == "image":  # LlamaIndex ImageBlock
            resolve = getattr(part, "resolve_image", None)
            source = resolve().read() if callable(resolve) else (part.path or part.url)
            return ImageInput(source)
        return None
    kind = part.get("type")
    caption = part.get("caption") if isinstance(part.get("caption"), str) else None
    if kind in ("image_url", "input_image"):  # OpenAI chat / responses
        value = part.get("image_url")
        url = value.get("url") if isinstance(value, dict) else value
        return ImageInput(url, caption)
    if kind != "image":
        return None
    for key in ("image", "url", "path"):  # Hugging Face, LangChain v1 url, a local path
        if part.get(key) is not None:
            return ImageInput(part[key], caption)
    data = part.get("base64") or (part.get("data") if part.get("source_type") == "base64" else None)
    if isinstance(data, str):  # LangChain base64 blocks
        mime = part.get("mime_type") or "image/png"
        return ImageInput(f"data:{mime};base64,{data}", caption)
    raise InvalidInputError(f"an image part needs an image, url, path or base64 field, got keys {sorted(part)}")


def _content(content: Any) -> tuple[str, list[ImageInput]]:
    if isinstance(content, str):
        return check_text(content), []
    if isinstance(content, list):  # multimodal parts
        parts: list[str] = []
        images: list[ImageInput] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif getattr(part, "block_type", None) == "text" and isinstance(getattr(part, "text", None), str):
                parts.append(part.text)
            elif isinstance(part, (list, tuple, int, float)) or part is None:
                # Parts are strings, dicts or content blocks; a nested list would otherwise vanish.
                raise InvalidInputError(f"a content part must be text, a dict or a content block, got "
                                        f"{type(part).__name__}")
            else:  # an image, or a part kind with no text (tool calls, reasoning): skipped
                image = _image_part(part)
                if image is not None:
                    images.append(image)
        return check_text("\n".join(parts)), images
    if content is None:
        return "", []
    raise InvalidInputError(f"message content must be text, got {type(content).__name__}")


def _one(message: Any, keep_images: bool) -> dict[str, Any]:
    if isinstance(message, str):
        return {"role": "user", "content": check_text(message)}
    if isinstance(message, dict):
        role, content, name = message.get("role", "user"), message.get("content"), message.get("name")
    elif hasattr(message, "content") and (hasattr(message, "role") or hasattr(message, "type")):
        # LlamaIndex ChatMessage (.role enum; images live in .blocks) or LangChain BaseMessage (.type)
        role = getattr(message, "role", None) or getattr(message, "type", None)
        role = getattr(role, "value", role)
        blocks = getattr(message, "blocks", None)
        content = list(blocks) if isinstance(blocks, list) else message.content
        name = getattr(message, "name", None)
    else:
        raise InvalidInputError(
            f"a message must be a str, a {{'role', 'content'}} dict or a chat message object, got {type(message).__name__}"
        )
    if not isinstance(role, str) or role.lower() not in _ROLE_ALIASES:
        raise InvalidInputError(f"unknown message role {role!r}")
    text, images = _content(content)
    out: dict[str, Any] = {"role": _ROLE_ALIASES[role.lower()], "content": text}
    if isinstance(name, str) and name.strip():
        out["name"] = check_text(name.strip(), "message name")
    if keep_images and images:
        out["images"] = images
    return out


def normalize_messages(messages: Any, *, images: bool = False) -> list[dict[str, Any]]:
    """Return ``[{"role", "content"[, "name"]}]`` for a str, a message, or a sequence of them.

    Content may be a list of parts (OpenAI, LangChain, Hugging Face and LlamaIndex
    shapes). Image parts are dropped unless ``images``: then a message that carries
    any gets ``"images": [ImageInput, ...]`` (sources not yet read).
    """
    if isinstance(messages, (bytes, bytearray, memoryview)):
        raise InvalidInputError("messages must be text, got bytes: decode them first")
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence):
        if not isinstance(messages, (str, dict)) and not hasattr(messages, "content"):
            raise InvalidInputError(f"messages must be a str, a message or a list of them, got {type(messages).__name__}")
        messages = [messages]
    return [_one(m, images) for m in messages]


def spoken_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user and assistant messages with text: what the extraction prompt shows."""
    return [m for m in messages if m["role"] in ("user", "assistant") and m["content"].strip()]


def render_conversation(messages: Sequence[dict[str, Any]]) -> str:
    """``speaker: text`` lines for the extraction prompt; system and tool messages are left out."""
    return "\n".join(f"{m.get('name') or m['role']}: {m['content'].strip()}" for m in spoken_messages(messages))


def one_system_message(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with every system message folded, in order, into one leading system message.

    Chat engines and agents put their own system prompt in front of what a memory
    returns (another system message); chat templates such as Gemma's accept only one,
    first. The texts are joined by a blank line; the other messages keep their order.
    """
    systems = [str(m.get("content") or "").strip() for m in messages if m.get("role") == "system"]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    text = "\n\n".join(s for s in systems if s)
    return [{"role": "system", "content": text}, *rest] if systems else rest
