"""Full-pipeline LoCoMo runs: ingest each conversation into a fresh memory, then answer its questions.

Per conversation (one :class:`~memlora_engine.Memory` with ``store="memory"``,
scope ``user_id="locomo-<sample_id>"``), sessions are ingested in order, two turns
per ``add`` with the session time as ``timestamp``; the first speaker is the
``user``, the second the ``assistant``, each message carrying the speaker's
``name``. Every question is then answered with ``Memory.answer`` at the time of the
last ingested session.

Everything is cached under ``<out>/runs/<config>/<sample_id>/``:

* ``calls.jsonl`` -- every model call: prompt messages, raw output, tokens, seconds;
* ``ingest.jsonl`` -- per ``add``: the turns (dia_ids), parsed facts, applied events,
  parse failures and rejected operations;
* ``memories.jsonl`` and ``checkpoint.json`` -- the memory after the last finished
  session, the memory-id -> dia_ids provenance and the cumulative ``Memory.stats``;
* ``answers.jsonl`` -- per question: prediction, ``Answer.declined`` and ``reason``,
  retrieved memories with their source turns, evidence recall, tokens and seconds.

With ``RunOptions.image_dir`` and a generator that ``supports_images`` (a VLM
backbone), a turn that shares a photo is added as a multimodal message (its text,
then the cached photo with its ``blip_caption``); a photo missing from the cache
falls back to the caption in the text, as for a text-only generator, and is
counted (``caption_fallbacks`` in ``checkpoint.json`` and the run's ``images``).

A run that stops resumes at the last finished session and the first unanswered
question; a finished one is re-scored without loading the model.

Configurations that differ only in the generation stage build the same memory (the
ingestion uses only the extraction and update stages, decoded greedily), so a run may
take another configuration's finished ingestion from the same cache instead of
redoing it (``run_config(..., ingest_from=NAME)``, ``memlora eval locomo
--ingest-from NAME``): the memory, the ingestion logs and the extraction/update
statistics are copied, and the checkpoint names where they came from
(``ingested_by``). It is refused unless both runs have the same model, prompt
version, run options and extraction/update stages (adapters and prompts).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from memlora_engine.data.image_cache import resolve_image
from memlora_engine.data.locomo import QA, Conversation, Turn
from memlora_engine.data.windows import session_windows, window_messages
from memlora_engine.embeddings.base import Embedder
from memlora_engine.evaluation._run_cache import (
    adapter_digests,
    check_fingerprint,
    check_ingest_source,
    reuse_ingestion,
    write_checkpoint,
)
from memlora_engine.evaluation.configs import EvalConfig, memory_settings
from memlora_engine.evaluation.recording import RecordingGenerator, read_jsonl, rewrite_jsonl
from memlora_engine.generator import GenerationRequest, Generator, SupportsContextLength
from memlora_engine.operations import INGEST_OPERATIONS
from memlora_engine.prompts import render_prompt
from memlora_engine.stats import Stats
from memlora_engine.types import Event, Operation

# INGEST_OPERATIONS is the registry's, re-exported: the stages that build the memory
# (two runs that agree on them ingest alike).
__all__ = ["INGEST_OPERATIONS", "RunOptions", "run_config", "select_questions", "session_windows"]

logger = logging.getLogger(__name__)

GeneratorSource = Generator | Callable[[], Generator]


@dataclass
class RunOptions:
    """How much of each conversation to run, and how.

    Attributes:
        limit_sessions: ingest only the first K sessions and keep only the questions
            whose (valid) evidence lies entirely in them.
        limit_questions: answer at most N questions per conversation (after the
            session filter), in file order.
        captions: append each shared photo's caption to its turn's text.
        context_tokens: the full-context configuration's prompt budget (model context);
            None: the model's own context length, else 8192.
        memory_overrides: extra :class:`MemoryConfig` fields (e.g. ``answer_top_k``).
        progress: tqdm bars on stderr.
        image_dir: the photo cache (:mod:`~memlora_engine.data.image_cache`); used
            only with a generator that ``supports_images`` (see the module docstring).
    """

    limit_sessions: int | None = None
    limit_questions: int | None = None
    captions: bool = True
    context_tokens: int | None = None
    memory_overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    image_dir: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The options that change what is ingested (a cached run must match them).

        ``memory_overrides`` are not here: the run fingerprints the whole
        :class:`MemoryConfig` they make (:func:`~memlora_engine.evaluation.configs.memory_settings`).
        """
        fingerprint: dict[str, Any] = {
            "limit_sessions": self.limit_sessions,
            "captions": self.captions,
            "context_tokens": self.context_tokens,
        }
        if self.image_dir is not None:  # absent otherwise, so runs cached before images existed still match
            fingerprint["images"] = True
        return fingerprint


def select_questions(conversation: Conversation, limit_sessions: int | None, limit_questions: int | None) -> list[QA]:
    """The questions a run answers (see :class:`RunOptions`)."""
    questions = list(conversation.qa)
    if limit_sessions is not None:
        kept = {s.index for s in conversation.sessions[:limit_sessions]}
        questions = [q for q in questions if q.evidence and q.evidence_sessions <= kept]
    if limit_questions is not None:
        questions = questions[:limit_questions]
    return questions


@dataclass
class _ImageFeed:
    """Turns' photos from the cache as image parts; counts photos sent and caption fallbacks."""

    directory: Path
    image_turns: int = 0
    images_sent: int = 0
    caption_fallbacks: int = 0

    def content(self, turn: Turn, captions: bool) -> str | list[dict[str, Any]]:
        """The turn's content: text + image parts, or the caption rendering when no photo is cached."""
        self.image_turns += 1
        paths = [p for p in (resolve_image(url, self.directory) for url in turn.img_url) if p is not None]
        if not paths:
            self.caption_fallbacks += 1
            return turn.rendered(captions=captions)
        self.images_sent += len(paths)
        caption = turn.blip_caption if captions else None
        return [{"type": "text", "text": turn.text},
                *({"type": "image", "image": str(p), "caption": caption} for p in paths)]

    def counts(self) -> dict[str, int]:
        return {"image_turns": self.image_turns, "images_sent": self.images_sent,
                "caption_fallbacks": self.caption_fallbacks}


def merge_stats(*dicts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for stats in dicts:
        for op, values in stats.items():
            slot = total.setdefault(op, {})
            for key, value in values.items():
                slot[key] = slot.get(key, 0) + value
    return total


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled or total == 0, leave=False)


class _ConversationRun:
    """One configuration on one conversation, resumable from its directory."""

    def __init__(
        self,
        directory: Path,
        conversation: Conversation,
        config: EvalConfig,
        get_generator: Callable[[], Generator],
        get_embedder: Callable[[], Embedder],
        options: RunOptions,
    ) -> None:
        self.dir = directory
        self.conv = conversation
        self.config = config
        self.options = options
        self._get_generator = get_generator
        self._get_embedder = get_embedder
        self.scope = f"locomo-{conversation.sample_id}"
        self.sessions = conversation.sessions[: options.limit_sessions]
        self.questions = select_questions(conversation, options.limit_sessions, options.limit_questions)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.dir / "checkpoint.json"
        self.ckpt: dict[str, Any] = (
            json.loads(self.ckpt_path.read_text(encoding="utf-8"))
            if self.ckpt_path.exists()
            else {"sessions_done": 0, "ingest_complete": False, "provenance": {}, "stats": {}}
        )
        self._base_stats = self.ckpt["stats"]
        self._recorder: RecordingGenerator | None = None
        self._log: Any = None
        self._memory: Any = None
        self.model_calls = 0

    # -- plumbing --------------------------------------------------------------------------
    def _save(self, stats: Stats | None) -> None:
        if stats is not None:
            self.ckpt["stats"] = merge_stats(self._base_stats, stats.as_dict())
        write_checkpoint(self.ckpt_path, self.ckpt)

    def _recording(self) -> RecordingGenerator:
        if self._recorder is None:
            self._log = (self.dir / "calls.jsonl").open("a", encoding="utf-8")
            self._recorder = RecordingGenerator(self._get_generator(), self.config.adapters, self._log)
        return self._recorder

    def _memory_instance(self) -> Any:
        if self._memory is None:
            from memlora_engine.memory import Memory

            memory = Memory(
                self.config.memory_config(**self.options.memory_overrides),
                generator=self._recording(),
                embedder=self._get_embedder(),
            )
            saved = self.dir / "memories.jsonl"
            if self.ckpt["sessions_done"] and saved.exists():
                memory.import_(saved, user_id=self.scope)
            self._memory = memory
        return self._memory

    def _drop_stale_records(self, answered: set[int]) -> None:
        """Forget log lines of work that was interrupted before its checkpoint (it is redone)."""
        done = self.ckpt["sessions_done"]

        def keep(record: dict[str, Any]) -> bool:
            if record.get("stage") == "ingest":
                return record.get("session", 0) <= done or self.ckpt["ingest_complete"]
            return record.get("question_index") in answered

        for name in ("calls.jsonl", "ingest.jsonl"):
            path = self.dir / name
            records = read_jsonl(path)
            kept = [r for r in records if keep(r)]
            if len(kept) != len(records) or (path.exists() and not path.read_text(encoding="utf-8").endswith("\n")):
                rewrite_jsonl(path, kept)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        if self._recorder is not None:
            self.model_calls = self._recorder.calls

    # -- stages ----------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        answers_path = self.dir / "answers.jsonl"
        answered_records = {r["question_index"]: r for r in read_jsonl(answers_path)}
        self._drop_stale_records(set(answered_records))
        rewrite_jsonl(answers_path, answered_records.values())
        try:
            if not self.config.full_context and not self.ckpt["ingest_complete"]:
                self._ingest()
            todo = [q for q in self.questions if q.index not in answered_records]
            if todo:
                with answers_path.open("a", encoding="utf-8") as out:
                    for record in self._answer(todo):
                        answered_records[record["question_index"]] = record
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                        out.flush()
        finally:
            self.close()
        return [answered_records[q.index] for q in self.questions]

    def _image_dir(self, recorder: RecordingGenerator) -> Path | None:
        """Where photos come from, when the generator takes them (else None: captions only)."""
        if self.options.image_dir is None:
            return None
        if not recorder.supports_images:
            logger.warning("image_dir given but the generator is text-only: photos enter as their captions")
            return None
        return Path(self.options.image_dir)

    def _ingest(self) -> None:
        from memlora_engine.repository import superseded_id, text_hash  # as _memory_instance imports Memory

        memory = self._memory_instance()
        recorder = self._recording()
        image_dir = self._image_dir(recorder)
        provenance: dict[str, list[str]] = self.ckpt["provenance"]
        remaining = self.sessions[self.ckpt["sessions_done"] :]
        total = sum(len(list(session_windows(s))) for s in remaining)
        with _progress(total, f"{self.config.name} {self.conv.sample_id} ingest", self.options.progress) as bar, (
            self.dir / "ingest.jsonl"
        ).open("a", encoding="utf-8") as out:
            for position, session in enumerate(self.sessions):
                if position < self.ckpt["sessions_done"]:
                    continue
                lines = []
                session_feed = _ImageFeed(image_dir) if image_dir is not None else None
                image_content = (partial(session_feed.content, captions=self.options.captions)
                                 if session_feed is not None else None)
                for turns in session_windows(session):
                    dia_ids = [t.dia_id for t in turns]
                    recorder.context = {"conversation": self.conv.sample_id, "stage": "ingest", "session": position + 1, "dia_ids": dia_ids}
                    start = time.perf_counter()
                    result = memory.add(
                        window_messages(self.conv, turns, captions=self.options.captions, image_content=image_content),
                        user_id=self.scope,
                        timestamp=session.date_time,
                    )
                    for event in result.events:
                        if event.event is Event.UPDATE and event.old_memory is not None and memory.config.keep_superseded:
                            # The replaced text is kept as a superseded record: it came from the turns the memory had.
                            kept = superseded_id(event.id, text_hash(event.old_memory))
                            provenance[kept] = list(provenance.get(event.id, []))
                        if event.event in (Event.ADD, Event.UPDATE):
                            sources = provenance.setdefault(event.id, [])
                            sources.extend(d for d in dia_ids if d not in sources)
                    lines.append(
                        {
                            "stage": "ingest",
                            "session": position + 1,
                            "date_time": session.date_time_text,
                            "dia_ids": dia_ids,
                            **result.to_dict(),
                            "seconds": round(time.perf_counter() - start, 4),
                        }
                    )
                    bar.update(1)
                out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
                out.flush()
                memory.export(self.dir / "memories.jsonl", user_id=self.scope)
                if session_feed is not None:  # counted per finished session, so a resumed run counts once
                    totals = self.ckpt.setdefault("images", {})
                    for key, value in session_feed.counts().items():
                        totals[key] = totals.get(key, 0) + value
                self.ckpt["sessions_done"] = position + 1
                self._save(memory.stats)
        self.ckpt["ingest_complete"] = True
        self._save(memory.stats)

    def _answer_time(self) -> Any:
        stamps = [s.date_time for s in self.sessions if s.date_time is not None]
        return stamps[-1] if stamps else None

    def _answer(self, questions: Sequence[QA]) -> Iterator[dict[str, Any]]:
        recorder = self._recording()
        stats = self._memory_instance().stats if not self.config.full_context else Stats()
        context = self._full_context() if self.config.full_context else None
        when = self._answer_time()
        with _progress(len(questions), f"{self.config.name} {self.conv.sample_id} answer", self.options.progress) as bar:
            for qa in questions:
                recorder.context = {"conversation": self.conv.sample_id, "stage": "answer", "question_index": qa.index}
                before = stats[Operation.GENERATION]
                start = time.perf_counter()
                declined = reason = None
                if context is not None:
                    prediction, retrieved, in_context = self._answer_full_context(qa, context, when, stats)
                else:
                    answer = self._memory.answer(qa.question, user_id=self.scope, timestamp=when)
                    prediction, declined, reason = answer.text, answer.declined, answer.reason
                    provenance = self.ckpt["provenance"]
                    retrieved = [
                        {"id": m.id, "text": m.text, "score": m.score, "dia_ids": provenance.get(m.id, [])}
                        for m in answer.memories
                    ]
                    in_context = {d for r in retrieved for d in r["dia_ids"]}
                after = stats[Operation.GENERATION]
                evidence = list(qa.evidence)
                yield {
                    "conversation": self.conv.sample_id,
                    "question_index": qa.index,
                    "question": qa.question,
                    "category": qa.category,
                    "category_name": qa.category_name,
                    "answer": qa.answer,
                    "reference": qa.reference,
                    "adversarial_answer": qa.adversarial_answer,
                    "evidence": evidence,
                    "invalid_evidence": list(qa.invalid_evidence),
                    "prediction": prediction,
                    "declined": declined,  # Answer.declined: which check declined it, before or after the model call
                    "reason": reason,
                    "retrieved": retrieved,
                    "retrieved_dia_ids": sorted(in_context),
                    "evidence_recall": (
                        sum(e in in_context for e in evidence) / len(evidence) if evidence else None
                    ),
                    "input_tokens": after.input_tokens - before.input_tokens,
                    "output_tokens": after.output_tokens - before.output_tokens,
                    "seconds": round(time.perf_counter() - start, 4),
                }
                self._save(stats)
                bar.update(1)

    # -- full context -----------------------------------------------------------------------
    def _context_budget(self, recorder: RecordingGenerator) -> int:
        if self.options.context_tokens is not None:
            return self.options.context_tokens
        if isinstance(recorder.inner, SupportsContextLength):
            return recorder.inner.context_length
        return 8192  # a generator that does not say (a remote server): the backbones' usual context

    def _full_context(self) -> dict[str, Any]:
        """The transcript that fits the model's context: the latest turns, whole sessions' headers kept."""
        recorder = self._recording()
        style = self.config.prompt_style(Operation.GENERATION)
        overhead = sum(
            recorder.count_tokens(m["content"])
            for m in render_prompt(style, Operation.GENERATION, memories="", question="x" * 200, date="2000-01-01")
        )
        max_new = self.config.memory_config(**self.options.memory_overrides).max_new_tokens["generation"]
        budget = self._context_budget(recorder) - overhead - max_new
        blocks: list[tuple[str, list[tuple[str, str]]]] = []
        for session in self.sessions:
            header = f"[Session {session.index}, {session.date_time_text or 'date unknown'}]"
            lines = [(t.dia_id, f"{t.speaker}: {t.rendered(captions=self.options.captions)}") for t in session.turns]
            blocks.append((header, lines))
        kept: list[tuple[str, list[tuple[str, str]]]] = []
        used = 0
        for header, lines in reversed(blocks):
            cost = recorder.count_tokens(header) + 1
            if used + cost > budget:
                break
            take: list[tuple[str, str]] = []
            for dia_id, line in reversed(lines):
                line_cost = recorder.count_tokens(line) + 1
                if used + cost + line_cost > budget:
                    break
                take.insert(0, (dia_id, line))
                cost += line_cost
            used += cost
            kept.insert(0, (header, take))
            if len(take) < len(lines):
                break
        text = "\n".join("\n".join([header, *(line for _, line in lines)]) for header, lines in kept)
        dia_ids = {dia_id for _, lines in kept for dia_id, _ in lines}
        total_turns = sum(len(lines) for _, lines in blocks)
        return {"text": text, "dia_ids": dia_ids, "truncated_turns": total_turns - len(dia_ids), "tokens": used}

    def _answer_full_context(
        self, qa: QA, context: dict[str, Any], when: Any, stats: Stats
    ) -> tuple[str, list[dict[str, Any]], set[str]]:
        recorder = self._recording()
        config = self.config.memory_config(**self.options.memory_overrides)
        request = GenerationRequest(
            operation=Operation.GENERATION,
            messages=render_prompt(
                self.config.prompt_style(Operation.GENERATION), Operation.GENERATION,
                memories=context["text"], question=qa.question.strip(),
                date=when.date().isoformat() if when is not None else "unknown",
            ),
            max_new_tokens=config.max_new_tokens["generation"],
        )
        start = time.perf_counter()
        result = recorder.generate(request)
        stats.record_call(
            Operation.GENERATION, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
            seconds=time.perf_counter() - start,
        )
        info = [{"context_tokens": context["tokens"], "truncated_turns": context["truncated_turns"]}]
        return result.text.strip(), info, set(context["dia_ids"])


def run_config(
    conversations: Sequence[Conversation],
    config: EvalConfig,
    generator: GeneratorSource,
    out_dir: str | Path,
    *,
    embedder: Embedder | Callable[[], Embedder] | None = None,
    options: RunOptions | None = None,
    model_name: str = "unknown",
    cache_dir: str | Path | None = None,
    ingest_from: str | None = None,
    adapters: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``config`` on ``conversations``; returns answers, stats, photo counts and call counts.

    The result's ``embedder`` is a function returning the memory's embedder (built
    on first call), for measures that embed as the memory does.

    Args:
        out_dir: the run cache goes to ``<out_dir>/runs/<config>/`` unless ``cache_dir``
            is given (then ``<cache_dir>/<config>/``): keep it outside a repository when
            the data's licence forbids redistribution, since it holds prompts and answers.
        generator: the model, or a zero-argument function that loads it (called only
            when some work is left, so a finished run re-scores without the model).
        embedder: the memory's embedder, or a function that builds it (default:
            all-MiniLM-L6-v2, loaded lazily).
        model_name: recorded in the run fingerprint.
        ingest_from: the name of another configuration in the same cache whose
            finished ingestion this run takes instead of ingesting (see the module
            docstring); used for conversations this run has not started.
        adapters: the adapter directory of each stage (the configuration's stages are
            used): their digests go into the fingerprint, so a cached run of other
            weights is neither resumed nor taken by ``ingest_from``.
    """
    options = options or RunOptions()
    directory = (Path(cache_dir) if cache_dir is not None else Path(out_dir) / "runs") / config.name
    from memlora_engine.prompts import PROMPT_VERSION

    fingerprint = {"config": config.describe(), "model": model_name, "prompt_version": PROMPT_VERSION, **options.fingerprint(),
                   "memory": memory_settings(config.memory_config(**options.memory_overrides))}
    if adapters is not None:
        fingerprint["adapter_weights"] = adapter_digests(
            {op.value: adapters[op.value] for op in config.adapters if op.value in adapters})
    cache: dict[str, Any] = {}

    def get_generator() -> Generator:
        if "generator" not in cache:
            cache["generator"] = generator if isinstance(generator, Generator) else generator()
        return cache["generator"]

    def get_embedder() -> Embedder:
        if "embedder" not in cache:
            if embedder is None:
                from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

                cache["embedder"] = SentenceTransformerEmbedder()
            else:
                cache["embedder"] = embedder if isinstance(embedder, Embedder) else embedder()
        return cache["embedder"]

    answers: list[dict[str, Any]] = []
    stats: dict[str, dict[str, float]] = {}
    images: dict[str, int] = {}
    calls = 0
    def started(conversation: Conversation) -> bool:
        return (directory / conversation.sample_id / "checkpoint.json").exists()

    source = directory.parent / ingest_from if ingest_from is not None else None
    if source is not None and not all(started(c) for c in conversations):
        check_ingest_source(source, fingerprint)  # before run.json is written: a refused run leaves nothing
    check_fingerprint(directory, fingerprint)
    for conversation in conversations:
        if source is not None and not started(conversation):
            reuse_ingestion(source, directory, conversation.sample_id)
        run = _ConversationRun(
            directory / conversation.sample_id, conversation, config, get_generator, get_embedder, options
        )
        answers.extend(run.run())
        stats = merge_stats(stats, run.ckpt["stats"])
        for key, value in run.ckpt.get("images", {}).items():
            images[key] = images.get(key, 0) + value
        calls += run.model_calls
    return {
        "config": config.describe(),
        "options": asdict(options),
        "answers": answers,
        "stats": stats,
        "images": images,
        "model_calls_this_process": calls,
        "generator": cache.get("generator"),
        "embedder": get_embedder,
    }
