"""How ``Memory`` handles images: what extraction sees, the image memories, VQA routing.

* With a backbone that ``supports_images`` (a VLM), extraction sees the pixels: the
  turn says ``[shares a photo: see image N]`` and image N rides in the request.
* With a text-only backbone, the caption stands in for the image (the caption
  baseline): ``[shares a photo: <caption>]``, the same rendering LoCoMo turns get in
  the training data. The caption comes with the image part (``"caption"``), or from
  the ``captioner`` given to ``Memory``; an image with neither is counted.
* Every image also becomes one *image memory* (``memory_type="image"``,
  ``image_id=<sha256>``), so a later question can retrieve it, and the facts extracted
  from that turn carry ``image_ids``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memlora_engine.images import ImageInput, LoadedImage, load_image
from memlora_engine.types import MemoryRecord

__all__ = ["PreparedImage", "image_ids_of", "image_memory_text", "prepare_turns", "refers_to_image"]

logger = logging.getLogger(__name__)

_VISUAL = re.compile(
    r"\b(photos?|photographs?|pictures?|pics?|images?|snapshots?|selfies?|screenshots?|paintings?|drawings?|"
    r"sketch(es)?|posters?|shown|pictured|depicted)\b",
    re.IGNORECASE,
)


def refers_to_image(question: str) -> bool:
    """True when ``question`` is about something seen: it names a photo, picture, painting..."""
    return bool(_VISUAL.search(question))


@dataclass
class PreparedImage:
    """One image of an ``add`` call: read and checked, not yet stored."""

    image: LoadedImage
    caption: str | None
    speaker: str
    message_text: str


@dataclass
class PreparedTurns:
    """The messages as extraction sees them, and the images they carried."""

    messages: list[dict[str, Any]]
    images: list[PreparedImage] = field(default_factory=list)
    uncaptioned: int = 0


def prepare_turns(
    messages: Sequence[dict[str, Any]], *, vision: bool, captioner: Callable[[Any], str] | None
) -> PreparedTurns:
    """Read every image of ``messages`` (raising before anything is stored) and mark the turns.

    Raises:
        InvalidInputError: an image cannot be read.
    """
    out = PreparedTurns(messages=[])
    for message in messages:
        inputs: list[ImageInput] = message.get("images", [])
        text = message["content"]
        markers = []
        for item in inputs:
            image = load_image(item)
            caption = (item.caption or "").strip() or None
            if caption is None and captioner is not None and not vision:
                caption = " ".join(str(captioner(image.pil())).split()) or None
            if caption is None and not vision:
                out.uncaptioned += 1
            out.images.append(PreparedImage(image, caption, message.get("name") or message["role"], text.strip()))
            if vision:
                markers.append(f"[shares a photo: see image {len(out.images)}]")
            else:
                markers.append(f"[shares a photo: {caption}]" if caption else "[shares a photo]")
        turn = {k: v for k, v in message.items() if k != "images"}
        if markers:
            turn["content"] = " ".join([text.strip(), *markers]).strip()
        out.messages.append(turn)
    return out


def image_memory_text(image: PreparedImage) -> str:
    """The text of an image memory: who shared it, its caption, the message it came with."""
    text = f"{image.speaker} shared a photo"
    if image.caption:
        text += f": {image.caption}"
    if image.message_text:
        said = image.message_text if len(image.message_text) <= 300 else image.message_text[:297] + "..."
        text += f' (with the message "{said}")'
    return text


def image_ids_of(record: MemoryRecord) -> list[str]:
    """The stored images a memory refers to: its own image, then those of its turn."""
    ids = []
    own = record.metadata.get("image_id")
    if isinstance(own, str) and own:
        ids.append(own)
    listed = record.metadata.get("image_ids")
    if isinstance(listed, str):
        ids += [i for i in listed.split(",") if i and i not in ids]
    return ids
