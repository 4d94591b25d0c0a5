"""The VQA extension benchmark (MemLoRA-V): one-word questions about the photos of LoCoMo conversations.

Captions lose details. For each photo shared in a conversation a teacher VLM writes
one question whose answer is ONE word, of one of three hard types
(:data:`QUESTION_TYPES`): an unusual object, the colour of a small region, a
countable quantity. V (:func:`~memlora_engine.evaluation.metrics.score_v`) is exact
match after lower-casing and stripping whitespace and surrounding punctuation.

* :func:`conversation_images` lists every shared photo (one per turn and URL) with
  its local file in the image cache (:mod:`memlora_engine.data.image_cache`).
* :func:`build_vqa_benchmark` asks the teacher for each photo (the type rotates
  object -> color -> count over the file's photos, in file order), keeps the
  conversation split (a photo whose URL or bytes occur in two splits is dropped),
  caches every teacher call so a build resumes, and writes JSONL records::

      {"id", "conversation", "split", "dia_id", "image", "url", "caption", "speaker",
       "turn_text", "type", "question", "answer", "reason", "teacher"}

* :func:`evaluate_vqa` puts each record's turn (text + photo + caption) into a fresh
  memory scope with ``infer=False`` and asks ``Memory.answer``: with a VLM backbone
  the engine answers from the stored photo through the ``vqa`` operation
  (configuration ``"memlora-v"``); with a text-only one only the caption was stored
  and the ``generation`` operation answers from it (``"caption"``, the baseline).

Commands: ``memlora eval fetch-images``, ``memlora eval vqa-build``, ``memlora eval vqa``
(see ``docs/vision_benchmark.md``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import mimetypes
import os
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memlora_engine.data.image_cache import image_kind, resolve_image
from memlora_engine.data.locomo import Conversation, load_locomo
from memlora_engine.data.splits import DEV_SPLITS, split_conversations
from memlora_engine.data.vqa import ONE_WORD_HINT, load_vqa_benchmark
from memlora_engine.errors import ConfigError, InvalidInputError, ModelOutputError
from memlora_engine.evaluation.metrics import normalize_vqa, score_v
from memlora_engine.parsing import load_json
from memlora_engine.teachers import CachedTeacher, Teacher
from memlora_engine.types import Operation

if TYPE_CHECKING:
    from memlora_engine.memory import Memory

__all__ = [
    "CONFIGS",
    "ConversationImage",
    "ONE_WORD_HINT",
    "QUESTION_SCHEMA",
    "QUESTION_TYPES",
    "build_vqa_benchmark",
    "conversation_images",
    "evaluate_vqa",
    "load_vqa_benchmark",
    "question_messages",
    "score_v",
]

logger = logging.getLogger(__name__)

QUESTION_TYPES: dict[str, str] = {
    "object": "an unusual or unexpected object in the photo (the answer names the object)",
    "color": "the colour of a small region or a small object of the photo (the answer is one colour word)",
    "count": "how many of some countable thing the photo shows (the answer is a numeral, e.g. 3)",
}
"""The three question types, in rotation order, with what the teacher is told to ask about."""

QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["question", "answer", "reason"],
    "additionalProperties": False,
}

CONFIGS = ("memlora-v", "caption")
"""``memlora-v``: a VLM backbone answers from the stored photo; ``caption``: a text-only one from its caption."""

# Prompts are versioned with the benchmark: changing them changes the questions.
_SYSTEM = (
    "You write one hard question about a photo, to test whether a model saw details that a short "
    "caption would leave out. The answer must be ONE word (a numeral counts as one word) that anyone "
    "looking at the photo would agree on. Return JSON only: "
    '{"question": "...", "answer": "one word", "reason": "one short sentence on where in the photo the answer is"}.'
)
_USER = string.Template(
    "Question type: $type. Ask about $description.\n"
    'Refer to the image as "the photo" in the question, e.g. "In the photo, ...?".'
)
_STRIP = string.whitespace + string.punctuation + "\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class ConversationImage:
    """One photo shared in a conversation turn; ``path`` is its cached file (None: not cached)."""

    conversation: str
    session: int
    dia_id: str
    speaker: str
    url: str
    caption: str | None
    turn_text: str
    path: Path | None
    index: int = 0

    @property
    def id(self) -> str:
        """``<conversation>:<dia_id>``, with ``#<n>`` for a turn's second and later URLs."""
        base = f"{self.conversation}:{self.dia_id}"
        return base if self.index == 0 else f"{base}#{self.index}"


def conversation_images(
    conversations: Sequence[Conversation], image_dir: str | os.PathLike[str] | None = None
) -> list[ConversationImage]:
    """Every (turn, URL) of ``conversations`` in file order, resolved against ``image_dir``."""
    return [
        ConversationImage(conv.sample_id, session.index, turn.dia_id, turn.speaker, url, turn.blip_caption,
                          turn.text, resolve_image(url, image_dir), index)
        for conv in conversations
        for session in conv.sessions
        for turn in session.turns
        for index, url in enumerate(turn.img_url)
    ]


def _data_url(path: Path) -> str:
    data = path.read_bytes()
    kind = image_kind(data)
    mime = f"image/{'jpeg' if kind == 'jpg' else kind}" if kind else mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def question_messages(image: str | os.PathLike[str], question_type: str) -> list[dict[str, Any]]:
    """The teacher prompt for one photo: OpenAI-style, the image as a ``data:`` URL part.

    Raises:
        ConfigError: an unknown question type.
    """
    if question_type not in QUESTION_TYPES:
        raise ConfigError(f"unknown question type {question_type!r}; choose one of {list(QUESTION_TYPES)}")
    text = _USER.substitute(type=question_type, description=QUESTION_TYPES[question_type])
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _data_url(Path(image))}},
            {"type": "text", "text": text},
        ]},
    ]


def _read_output(raw: str) -> tuple[dict[str, str] | None, str | None]:
    """``({"question", "answer", "reason"}, None)`` or ``(None, why unusable)``."""
    try:
        value, _ = load_json(raw, operation=Operation.VQA)
    except ModelOutputError:
        return None, "unparseable"
    if isinstance(value, list):  # a teacher that wrapped its object in a list
        value = next((item for item in value if isinstance(item, dict)), None)
    if not isinstance(value, dict):
        return None, "incomplete"
    fields = {}
    for key in ("question", "answer", "reason"):
        item = value.get(key)
        ok = isinstance(item, (str, int, float)) and not isinstance(item, bool)
        fields[key] = " ".join(str(item).split()) if ok else ""
    fields["answer"] = fields["answer"].strip(_STRIP)
    if not fields["question"] or not fields["answer"]:
        return None, "incomplete"
    if len(fields["answer"].split()) != 1:
        return None, "not_one_word"
    return fields, None


def _default_cache(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".teacher_cache.jsonl")


def build_vqa_benchmark(
    data: str | os.PathLike[str] | Sequence[Conversation],
    teacher: Teacher,
    *,
    image_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    splits: Mapping[str, Sequence[str]] = DEV_SPLITS,
    cache_path: str | os.PathLike[str] | None = None,
    max_new_tokens: int = 256,
) -> dict[str, Any]:
    """Build (or resume) the benchmark and write it to ``out_path`` as JSONL.

    Args:
        data: a LoCoMo-format file, or its loaded conversations.
        teacher: a VLM :class:`~memlora_engine.teachers.Teacher`. Unless it is a
            ``CachedTeacher`` already, it is wrapped in one writing to ``cache_path``
            (default ``<out stem>.teacher_cache.jsonl`` next to ``out_path``): a rerun
            replays the answers instead of asking again.
        image_dir: the image cache (see :mod:`~memlora_engine.data.image_cache`).
        splits: split name -> conversation ids (default: the dev file's
            :data:`~memlora_engine.data.splits.DEV_SPLITS`); photos of conversations
            in no split are left out.

    Returns:
        A summary: ``records``, ``per_split``, ``per_type``, ``images`` (all enumerated),
        ``unassigned``, ``dropped_shared`` (URL or bytes in more than one split),
        ``skipped_missing`` (no cached file), ``unusable`` (per reason: ``unparseable``,
        ``incomplete``, ``not_one_word``), ``teacher_calls`` and ``teacher_cache_hits``.
    """
    conversations = load_locomo(Path(data)) if isinstance(data, (str, os.PathLike)) else list(data)
    out = Path(out_path)
    split_of = {c.sample_id: name for name, group in split_conversations(conversations, splits).items()
                if name != "unassigned" for c in group}
    images = conversation_images(conversations, image_dir)
    types = list(QUESTION_TYPES)
    kind_of = {image.id: types[number % len(types)] for number, image in enumerate(images)}
    assigned = [(image, split_of[image.conversation]) for image in images if image.conversation in split_of]
    url_splits: dict[str, set[str]] = {}
    content_splits: dict[str, set[str]] = {}
    content_of: dict[str, str] = {}
    for image, split in assigned:
        url_splits.setdefault(image.url.strip(), set()).add(split)
        if image.path is not None:
            content_of[image.id] = hashlib.sha256(image.path.read_bytes()).hexdigest()
            content_splits.setdefault(content_of[image.id], set()).add(split)
    kept: list[tuple[ConversationImage, str, Path]] = []
    dropped = missing = 0
    for image, split in assigned:
        digest = content_of.get(image.id)
        if len(url_splits[image.url.strip()]) > 1 or (digest is not None and len(content_splits[digest]) > 1):
            dropped += 1
        elif image.path is None:
            missing += 1
        else:
            kept.append((image, split, image.path))
    cached = teacher if isinstance(teacher, CachedTeacher) else CachedTeacher(
        teacher, Path(cache_path) if cache_path is not None else _default_cache(out)
    )
    hits_before = cached.hits
    records: list[dict[str, Any]] = []
    unusable: Counter[str] = Counter()
    for image, split, path in kept:
        raw = cached.complete(question_messages(path, kind_of[image.id]), operation=Operation.VQA,
                              json_schema=QUESTION_SCHEMA, max_new_tokens=max_new_tokens)
        fields, problem = _read_output(raw)
        if fields is None:
            unusable[problem or "unparseable"] += 1
            logger.info("teacher output for %s unusable (%s): %.200r", image.id, problem, raw)
            continue
        records.append({
            "id": image.id, "conversation": image.conversation, "split": split, "dia_id": image.dia_id,
            "image": str(path), "url": image.url, "caption": image.caption, "speaker": image.speaker,
            "turn_text": image.turn_text, "type": kind_of[image.id], **fields, "teacher": cached.name,
        })
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(out)
    hits = cached.hits - hits_before
    return {
        "out": str(out),
        "teacher": cached.name,
        "records": len(records),
        "per_split": dict(Counter(r["split"] for r in records)),
        "per_type": dict(Counter(r["type"] for r in records)),
        "images": len(images),
        "unassigned": len(images) - len(assigned),
        "dropped_shared": dropped,
        "skipped_missing": missing,
        "unusable": {reason: unusable.get(reason, 0) for reason in ("unparseable", "incomplete", "not_one_word")},
        "teacher_calls": len(kept) - hits,
        "teacher_cache_hits": hits,
    }


def _record_image(record: Mapping[str, Any], image_dir: str | os.PathLike[str] | None) -> str:
    found = resolve_image(record["url"], image_dir) if image_dir is not None else None
    path = found or Path(record["image"])
    if not path.is_file():
        raise InvalidInputError(f"image of {record['id']} not found ({path}); pass the image directory")
    return str(path)


def _share(rows: Sequence[dict[str, Any]]) -> float | None:
    return sum(r["correct"] for r in rows) / len(rows) if rows else None


def evaluate_vqa(
    records: Iterable[Mapping[str, Any]],
    memory_factory: Memory | Callable[[], Memory],
    *,
    config: str = "memlora-v",
    image_dir: str | os.PathLike[str] | None = None,
    hint: str | None = ONE_WORD_HINT,
    route: str = "auto",
) -> dict[str, Any]:
    """Answer every record's question from a memory holding only its turn; score with V.

    Per record, in scope ``user_id="vqa-<id>"`` (deleted afterwards): ``add`` the turn
    as a multimodal message (turn text, photo, caption) with ``infer=False``, then
    ``Memory.answer(question + " " + hint)``.

    Args:
        memory_factory: a :class:`~memlora_engine.Memory`, or a function returning one.
        config: ``"memlora-v"`` (the memory's generator must take images) or
            ``"caption"`` (it must not): checked, so a run is what it is named.
        image_dir: re-resolve each photo by URL in this cache (default: the record's path).
        hint: appended to each question (None: the question alone).
        route: passed to ``Memory.answer``.

    Returns:
        ``config``, ``count``, ``V`` (fraction correct), ``per_type`` / ``per_split``
        (count, V), ``operations`` (how many answers each operation gave), ``failures``
        (answers whose model output could not be parsed) and ``rows`` (per record: id,
        split, type, question, gold answer, prediction, reason, operation, image_ids,
        failure, correct).

    Raises:
        ConfigError: an unknown configuration, or a generator that does not match it.
    """
    if config not in CONFIGS:
        raise ConfigError(f"unknown VQA configuration {config!r}; choose one of {list(CONFIGS)}")
    from memlora_engine.memory import Memory

    memory = memory_factory if isinstance(memory_factory, Memory) else memory_factory()
    sees = bool(memory.sees_images)  # the engine's rule: a generator declaring SupportsImages, set True
    if sees != (config == "memlora-v"):
        want = "a generator that takes images (a VLM backbone)" if config == "memlora-v" else "a text-only generator"
        raise ConfigError(f"configuration {config!r} needs {want}")
    rows = []
    for record in records:
        scope = f"vqa-{record['id']}"
        image = _record_image(record, image_dir)
        message = {"role": "user", "name": record["speaker"], "content": [
            {"type": "text", "text": record["turn_text"]},
            {"type": "image", "image": image, "caption": record.get("caption")},
        ]}
        question = f"{record['question'].strip()} {hint}" if hint else record["question"].strip()
        try:
            memory.add([message], user_id=scope, infer=False)
            answer = memory.answer(question, user_id=scope, route=route)
        finally:
            memory.delete_all(user_id=scope)
        rows.append({
            "id": record["id"], "split": record["split"], "type": record["type"], "question": record["question"],
            "answer": record["answer"], "prediction": answer.text, "normalized": normalize_vqa(answer.text),
            "reason": answer.reason, "operation": answer.operation, "image_ids": list(answer.image_ids),
            "failure": answer.failure,
            "correct": score_v(answer.text, record["answer"]),
        })
    groups = {key: sorted({r[key] for r in rows}) for key in ("type", "split")}
    return {
        "config": config,
        "count": len(rows),
        "V": _share(rows),
        "per_type": {t: {"count": sum(r["type"] == t for r in rows), "V": _share([r for r in rows if r["type"] == t])}
                     for t in groups["type"]},
        "per_split": {s: {"count": sum(r["split"] == s for r in rows),
                          "V": _share([r for r in rows if r["split"] == s])} for s in groups["split"]},
        "operations": dict(Counter(r["operation"] for r in rows)),
        "failures": sum(r["failure"] is not None for r in rows),
        "rows": rows,
    }
