"""VQA distillation wiring: (image, question) -> ``{"answer", "reason"}`` from a teacher VLM.

Interface only, for the vision issue: no VLM is reachable offline here. The messages
are OpenAI-style, with the image as a ``data:`` URL part, which OpenAI-compatible VLM
servers and LangChain chat models accept; the answer is cleaned by
:func:`~memlora_engine.training.cleaning.clean_output` like every other operation.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from memlora_engine.errors import ModelOutputError
from memlora_engine.training.cleaning import clean_output
from memlora_engine.training.teachers import Teacher
from memlora_engine.types import Operation

__all__ = ["VQA_SCHEMA", "build_vqa_examples", "vqa_messages"]

VQA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["answer", "reason"],
    "additionalProperties": False,
}

_SYSTEM = ('Answer the question about the image. Return JSON only: {"answer": "a few words", '
           '"reason": "one short sentence"}.')


def vqa_messages(image: str | Path, question: str) -> list[dict[str, Any]]:
    """Chat messages asking ``question`` about the image file ``image``."""
    path = Path(image)
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}},
            {"type": "text", "text": question.strip()},
        ]},
    ]


def build_vqa_examples(items: Iterable[tuple[str | Path, str]], teacher: Teacher) -> tuple[list[dict[str, Any]], int]:
    """Ask ``teacher`` each (image path, question); return the cleaned examples and the unusable count.

    Examples keep the image *path* (not the pixels) and the text question, so the cache
    stays small; the student's processor loads the image at training time.
    """
    examples, unusable = [], 0
    for number, (image, question) in enumerate(items):
        raw = teacher.complete(vqa_messages(image, question), operation=Operation.VQA, json_schema=VQA_SCHEMA)
        try:
            target = clean_output(Operation.VQA, raw)
        except ModelOutputError:
            unusable += 1
            continue
        examples.append({"id": f"vqa/{number}", "operation": "vqa", "image": str(image), "question": question,
                         "target": target, "raw": raw})
    return examples, unusable
