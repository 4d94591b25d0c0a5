"""VQA training data: (image, question) -> ``{"answer", "reason"}`` examples for the ``vqa`` expert.

Two sources, one example shape ``{"id", "operation": "vqa", "image", "question",
"target", "raw", ...}`` (the image *path*, not pixels, so the data stays small):

* :func:`benchmark_examples`: the records of the VQA benchmark
  (:mod:`memlora_engine.evaluation.vqa`), whose ``answer`` / ``reason`` were written by
  its teacher VLM -- the distillation signal;
* :func:`build_vqa_examples`: ask a teacher VLM directly. Its messages are OpenAI-style,
  with the image as a ``data:`` URL part, which OpenAI-compatible VLM servers and
  LangChain chat models accept.

Either way the target is cleaned by :func:`~memlora_engine.training.cleaning.clean_output`
(compact ``{"answer": ..., "reason": ...}``, as the constrained decoder writes it), and at
training time the example is rendered with :func:`vqa_prompt` -- the engine's own VQA
prompt -- and encoded with the image by the backbone's
:func:`~memlora_engine.backbone.vlm.encode_vlm` (see :mod:`memlora_engine.training.encoding`).
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memlora_engine.data.image_cache import resolve_image
from memlora_engine.data.vqa import ONE_WORD_HINT
from memlora_engine.errors import InvalidInputError, ModelOutputError
from memlora_engine.operations import VQA_SCHEMA
from memlora_engine.teachers import Teacher
from memlora_engine.training.cleaning import clean_output, dump_json
from memlora_engine.types import Operation

__all__ = ["VQA_SCHEMA", "benchmark_examples", "build_vqa_examples", "vqa_messages", "vqa_prompt"]

logger = logging.getLogger(__name__)

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


def vqa_prompt(question: str) -> list[dict[str, str]]:
    """The messages the engine sends the ``vqa`` operation for ``question`` (its image goes beside them).

    Exactly what :meth:`~memlora_engine.Memory.answer` renders: the ``memlora`` VQA
    prompt with the stripped question.
    """
    from memlora_engine.prompts import render_prompt

    return render_prompt("memlora", Operation.VQA, question=question.strip())


def benchmark_examples(
    records: Iterable[Mapping[str, Any]],
    *,
    hint: str | None = ONE_WORD_HINT,
    image_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Training examples from VQA benchmark records (:func:`~memlora_engine.data.vqa.load_vqa_benchmark`).

    Each record's ``(image, question)`` becomes the prompt and its teacher ``answer`` /
    ``reason`` the target. The question is the one the evaluation asks: the record's
    question followed by ``hint`` (default: the benchmark's
    :data:`~memlora_engine.data.vqa.ONE_WORD_HINT`, as ``evaluate_vqa`` appends it;
    None: the bare question), so the adapter trains on the prompts it is scored on.

    Args:
        records: benchmark records (``id``, ``image``, ``question``, ``answer``, ``reason``;
            ``conversation``, ``split``, ``type``, ``url``, ``teacher`` are carried along).
        hint: appended to each question (see above).
        image_dir: re-resolve each photo by its ``url`` in this image cache (as
            ``evaluate_vqa`` does); default: the record's ``image`` path.

    Returns:
        ``{"id", "operation": "vqa", "image", "question", "target", "raw", "conversation",
        "split", "type", "teacher"}`` per usable record; records whose answer cleans to
        nothing are skipped (and logged).

    Raises:
        InvalidInputError: a record's image file is missing.
    """
    examples = []
    for record in records:
        image = Path(record["image"])
        if image_dir is not None:
            image = resolve_image(str(record.get("url") or ""), image_dir) or image
        if not image.is_file():
            raise InvalidInputError(f"image of VQA record {record['id']} not found ({image}); pass the image directory")
        question = str(record["question"]).strip()
        raw = dump_json({"answer": record.get("answer"), "reason": record.get("reason") or ""})
        try:
            target = clean_output(Operation.VQA, raw)
        except ModelOutputError:
            logger.info("VQA record %s has no usable answer; skipped", record["id"])
            continue
        examples.append({
            "id": str(record["id"]), "operation": Operation.VQA.value, "image": str(image),
            "question": f"{question} {hint}" if hint else question, "target": target, "raw": raw,
            **{key: record.get(key) for key in ("conversation", "split", "type", "teacher")},
        })
    return examples
