"""The Mem0-style memory pipeline: extraction -> retrieval -> update -> apply."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from memlora_engine._locks import StoreLocks
from memlora_engine._vision import PreparedImage, image_ids_of, image_memory_text, prepare_turns, refers_to_image
from memlora_engine.config import MemoryConfig
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import (
    ConfigError,
    GeneratorError,
    InvalidInputError,
    MemLoRAError,
    MemoryNotFoundError,
    ModelOutputError,
)
from memlora_engine.generator import Generation, GenerationRequest, Generator, SupportsAdapters, SupportsImages
from memlora_engine.history import HistoryStore, PendingBatch
from memlora_engine.images import ImageStore, LoadedImage, load_image
from memlora_engine.messages import check_text, normalize_messages, render_conversation
from memlora_engine.operations import operation_spec
from memlora_engine.ops import PlannedOp, plan_operations
from memlora_engine.parsing import (
    EXTRACTION_SCHEMA,
    UPDATE_SCHEMA,
    VQA_SCHEMA,
    parse_facts,
    parse_update_ops,
    parse_vqa,
    strip_thinking,
)
from memlora_engine.prompts import render_prompt
from memlora_engine.sessions import SessionStore
from memlora_engine.stats import Stats
from memlora_engine.store.chroma import ChromaStore, validate_metadata
from memlora_engine.types import AddResult, Answer, Event, HistoryEntry, MemoryEvent, MemoryRecord, Operation, Scope

__all__ = ["Memory", "text_hash"]

logger = logging.getLogger(__name__)

Timestamp = datetime | str | None

# Crash-test hook (tests/reliability): MEMLORA_FAULT_POINT="POINT" or "POINT:N" makes
# the process die like ``kill -9`` the Nth time it reaches POINT in a write.
_fault_hits: dict[str, int] = {}


def _fault(point: str) -> None:
    spec = os.environ.get("MEMLORA_FAULT_POINT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name == point:
        _fault_hits[point] = _fault_hits.get(point, 0) + 1
        if _fault_hits[point] >= int(nth or 1):
            os._exit(137)


def text_hash(text: str) -> str:
    """The duplicate-detection hash: sha256 of the text with whitespace folded."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def _check_id(memory_id: object) -> str:
    if not isinstance(memory_id, str) or not memory_id:
        raise InvalidInputError(f"memory_id must be a non-empty string, got {memory_id!r}")
    return check_text(memory_id, "memory_id")


class Memory:
    """Long-term memory for agents, run by a small local model.

    Args:
        config: storage, retrieval and prompt settings (defaults: embedded Chroma in
            the per-user data directory, MemLoRA prompts).
        generator: the model backend (see :class:`~memlora_engine.generator.Generator`);
            required by ``add(infer=True)`` and ``answer``.
        embedder: text embedder; sentence-transformers all-MiniLM-L6-v2 by default.
        store: a :class:`ChromaStore`; built from ``config`` when omitted.
        history: the audit :class:`HistoryStore`; beside the store when omitted.
        sessions: the chat-session buffer :class:`SessionStore`; beside the store when omitted.
        clock: returns "now" (injectable for tests and replays).
        images: where images given to ``add`` are kept (:class:`ImageStore`); beside the
            store when omitted (in memory for ``store="memory"``).
        captioner: turns a PIL image into a caption, for a text-only generator given an
            image without one (e.g. a transformers image-to-text pipeline).

    Every read and write names its scope with ``user_id``, ``agent_id`` and/or
    ``run_id``; a scope only ever sees its own memories.

    Example:
        >>> from memlora_engine import Memory, MemoryConfig
        >>> from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
        >>> gen = ScriptedGenerator({"extraction": ['{"facts": ["Likes tea"]}']})
        >>> m = Memory(MemoryConfig(store="memory"), generator=gen, embedder=DeterministicEmbedder())
        >>> [e.event.value for e in m.add("I like tea", user_id="alice")]
        ['ADD']
        >>> m.search("tea", user_id="alice")[0].text
        'Likes tea'
    """

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        generator: Generator | None = None,
        embedder: Embedder | None = None,
        store: ChromaStore | None = None,
        history: HistoryStore | None = None,
        sessions: SessionStore | None = None,
        clock: Callable[[], datetime] | None = None,
        images: ImageStore | None = None,
        captioner: Callable[[Any], str] | None = None,
    ) -> None:
        self.config = config if config is not None else MemoryConfig()
        self.generator = generator
        if embedder is None:
            from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder(self.config.embedding_model)
        self.embedder = embedder
        self.store = store if store is not None else self._build_store()
        self.history_store = history if history is not None else HistoryStore(self._sqlite_path("history.db"))
        self.session_store = sessions if sessions is not None else SessionStore(self._sqlite_path("sessions.db"))
        self._clock = clock or (lambda: datetime.now(UTC).astimezone())
        self.image_store = images if images is not None else self._build_image_store()
        self.captioner = captioner
        self.stats = Stats()
        store_dir = self.store.path
        self._locks = StoreLocks(store_dir.with_name(store_dir.name + ".locks") if store_dir is not None else None)
        self._recover()

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Release the store and the SQLite files (the memory is unusable afterwards)."""
        self.history_store.close()
        self.session_store.close()
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- construction -----------------------------------------------------------------
    def _build_store(self) -> ChromaStore:
        cfg = self.config
        if cfg.store == "memory":
            return ChromaStore.in_memory(namespace=cfg.namespace)
        if cfg.store == "http":
            return ChromaStore.http(
                cfg.chroma_host, cfg.chroma_port, ssl=cfg.chroma_ssl, headers=cfg.chroma_headers, namespace=cfg.namespace
            )
        return ChromaStore.persistent(cfg.resolved_data_dir / "chroma", namespace=cfg.namespace)

    def _build_image_store(self) -> ImageStore:
        if self.config.store == "memory":
            return ImageStore(None)
        return ImageStore(self.config.resolved_data_dir / "images" / self.config.namespace)

    def _sqlite_path(self, name: str) -> str | Path:
        if self.config.store == "memory":
            return ":memory:"
        return self.config.resolved_data_dir / name

    def _now(self, timestamp: Timestamp = None) -> datetime:
        if timestamp is None:
            return self._clock()
        if isinstance(timestamp, datetime):
            return timestamp
        if isinstance(timestamp, str):
            try:
                return datetime.fromisoformat(timestamp)
            except ValueError as exc:
                raise InvalidInputError(f"timestamp must be ISO 8601, got {timestamp!r}") from exc
        raise InvalidInputError(f"timestamp must be a datetime or ISO string, got {type(timestamp).__name__}")

    # -- model calls ------------------------------------------------------------------
    def _style(self, op: Operation) -> str:
        generator = self.generator
        has_adapter = isinstance(generator, SupportsAdapters) and bool(generator.has_adapter(op))
        return operation_spec(op).prompt_style(self.config.prompt_style, self.config.base_prompt_style, has_adapter)

    @property
    def sees_images(self) -> bool:
        """True when the generator takes images (a VLM backbone): extraction and VQA see pixels."""
        generator = self.generator
        return isinstance(generator, SupportsImages) and bool(generator.supports_images)

    def _call(self, op: Operation, schema: dict[str, Any] | None = None, images: Sequence[Any] = (),
              **values: str) -> Generation:
        """One model call for ``op``; ``schema`` defaults to the operation's (the registry's)."""
        if self.generator is None:
            raise GeneratorError(
                "no generator configured: pass generator= (the on-device backbone, or "
                "memlora_engine.testing.ScriptedGenerator in tests)"
            )
        request = GenerationRequest(
            operation=op,
            messages=render_prompt(self._style(op), op, **values),
            json_schema=(schema or operation_spec(op).json_schema) if self.config.constrained_json else None,
            max_new_tokens=self.config.max_new_tokens[op.value],
            images=tuple(images),
        )
        start = time.perf_counter()
        result = self.generator.generate(request)
        self.stats.record_call(
            op,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            seconds=time.perf_counter() - start,
        )
        return result

    # -- add ----------------------------------------------------------------------------
    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        infer: bool = True,
        timestamp: Timestamp = None,
    ) -> AddResult:
        """Remember what ``messages`` say.

        With ``infer=True`` the extraction operation turns the conversation into
        facts, each fact retrieves its ``update_top_k`` most similar old memories,
        and the update operation decides ADD/UPDATE/DELETE/NONE. With
        ``infer=False`` each message's text is stored as is.

        ``timestamp`` (the session time) is the date shown to the model and the
        time recorded on the memories written. Output the model garbles applies
        nothing: the result's ``failures`` say why and ``stats`` counts it.

        Message content may carry images (a path, URL, bytes or PIL image, in the
        OpenAI, LangChain, Hugging Face or LlamaIndex part shapes; an optional
        ``"caption"``). Each is stored once per scope (content-addressed) and becomes
        an image memory (``memory_type="image"``, ``image_id``); facts extracted from
        the same call carry ``image_ids``. A generator that ``supports_images`` sees
        the pixels during extraction; a text-only one sees the caption instead. An
        image that cannot be read raises before anything is stored.
        """
        scope = Scope(user_id, agent_id, run_id)
        meta = validate_metadata(metadata)
        given = normalize_messages(messages, images=True)
        prepared = prepare_turns(given, vision=self.sees_images, captioner=self.captioner)
        now = self._now(timestamp)
        if prepared.uncaptioned:
            self.stats.record_images("uncaptioned", prepared.uncaptioned)
            logger.info("%d image(s) with no caption for a text-only generator", prepared.uncaptioned)
        if not infer:  # the words as given; each image is its own image memory
            texts = [m["content"].strip() for m in given if m["role"] != "system" and m["content"].strip()]
            result = self._add_texts(scope, texts, meta, now)
            result.events += self._add_images(scope, prepared.images, meta, now)
            return result
        conversation = self._fit(render_conversation(prepared.messages))
        result = AddResult()
        if conversation:
            fact_meta = meta
            if prepared.images:
                fact_meta = {**meta, "image_ids": ",".join(dict.fromkeys(p.image.id for p in prepared.images))}
            self._infer(scope, conversation, prepared.images, fact_meta, now, result)
        # Image memories hold the user's input, not model output: stored even when a parse failed.
        result.events += self._add_images(scope, prepared.images, meta, now)
        return result

    def _infer(self, scope: Scope, conversation: str, images: list[PreparedImage], meta: dict[str, Any],
               now: datetime, result: AddResult) -> None:
        """Extraction, retrieval, update and apply for one ``add`` (results go into ``result``)."""
        # Extraction reads nothing from the store, so it runs outside the scope lock.
        pixels = [p.image.pil() for p in images] if self.sees_images else []
        try:
            raw = self._call(
                Operation.EXTRACTION, EXTRACTION_SCHEMA, pixels, conversation=conversation,
                date=now.date().isoformat(),
            ).text
            result.facts = parse_facts(raw)
        except ModelOutputError as exc:
            self._failed(Operation.EXTRACTION, exc, result)
            return
        if not result.facts:
            return
        fact_vectors = dict(zip(result.facts, self.embedder.embed(result.facts)))
        with self._locks.scope(scope):
            self._recover()  # a crashed worker's batch must land before we read
            old = self._related(scope, fact_vectors)
            if not old and self.config.skip_update_when_empty:
                planned = [PlannedOp(Event.ADD, text=f) for f in result.facts]
            else:
                id_map = {str(i): record for i, record in enumerate(old)}
                old_json = json.dumps([{"id": k, "text": r.text} for k, r in id_map.items()], ensure_ascii=False, indent=2)
                try:
                    raw = self._call(
                        Operation.UPDATE,
                        UPDATE_SCHEMA,
                        old_memories=old_json,
                        facts=json.dumps(result.facts, ensure_ascii=False),
                        date=now.date().isoformat(),
                    ).text
                    raw_ops = parse_update_ops(raw)
                except ModelOutputError as exc:
                    self._failed(Operation.UPDATE, exc, result)
                    return
                planned, rejections = plan_operations(raw_ops, id_map)
                if rejections:
                    self.stats.record_rejected(Operation.UPDATE, len(rejections))
                    result.rejected = [r.to_dict() for r in rejections]
                    logger.info("rejected %d update ops: %s", len(rejections), [r.reason for r in rejections])
            result.events = self._apply(scope, planned, meta, now, fact_vectors)

    def _add_images(self, scope: Scope, images: Sequence[PreparedImage], meta: dict[str, Any],
                    now: datetime) -> list[MemoryEvent]:
        """Store each image file, then one image memory per image.

        Duplicates are decided by image, not by text: two photos that both read "Alice
        shared a photo" are two memories; the same photo shared again is one.
        """
        events: list[MemoryEvent] = []
        for prepared in images:
            with self._locks.scope(scope):
                self._recover()
                if self.store.list(scope, {"image_id": prepared.image.id}, 1):
                    continue  # this photo is already remembered in this scope
                self.image_store.put(scope, prepared.image)
                text = image_memory_text(prepared)
                image_meta = {**meta, "memory_type": "image", "image_id": prepared.image.id}
                if prepared.caption:
                    image_meta["caption"] = prepared.caption
                events += self._apply(scope, [PlannedOp(Event.ADD, text=text)], image_meta, now, {}, checked=True)
            self.stats.record_images("stored")
        return events

    def _fit(self, conversation: str) -> str:
        """Cut the conversation to ``config.max_conversation_chars``, keeping the latest turns."""
        budget = self.config.max_conversation_chars
        if budget is None or len(conversation) <= budget:
            return conversation
        kept = conversation[-budget:]
        newline = kept.find("\n")
        if 0 <= newline < len(kept) - 1:
            kept = kept[newline + 1 :]  # start at a whole line when one fits
        warnings.warn(
            f"conversation of {len(conversation)} characters exceeds max_conversation_chars={budget}; "
            f"only its last {len(kept)} characters are sent for extraction",
            stacklevel=3,
        )
        logger.warning("conversation cut from %d to %d characters for extraction", len(conversation), len(kept))
        return kept

    def add_many(
        self,
        texts: Iterable[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: Timestamp = None,
        batch_size: int = 512,
    ) -> AddResult:
        """Store many texts as they are (no model), in journalled batches: the bulk path.

        Equivalent to ``add(text, infer=False)`` for each text, but embeds
        ``batch_size`` texts at a time and checks duplicates with one store lookup
        per batch. Each batch is committed on its own (a crash loses at most the
        batch in flight, never half of one).
        """
        scope = Scope(user_id, agent_id, run_id)
        meta = validate_metadata(metadata)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(texts, str):
            raise InvalidInputError("texts must be an iterable of strings, not one string (use add)")
        now = self._now(timestamp)
        result = AddResult()
        chunk: list[str] = []
        for text in texts:
            if not isinstance(text, str):
                raise InvalidInputError(f"texts must be strings, got {type(text).__name__}")
            check_text(text, "text")
            if text.strip():
                chunk.append(text.strip())
            if len(chunk) >= batch_size:
                result.events += self._add_texts(scope, chunk, meta, now).events
                result.facts += chunk
                chunk = []
        if chunk:
            result.events += self._add_texts(scope, chunk, meta, now).events
            result.facts += chunk
        return result

    def _add_texts(self, scope: Scope, texts: list[str], meta: dict[str, Any], now: datetime) -> AddResult:
        unique = list(dict.fromkeys(texts))
        with self._locks.scope(scope):
            self._recover()
            known = self.store.hashes_present(scope, [text_hash(t) for t in unique])
            planned = [PlannedOp(Event.ADD, text=t) for t in unique if text_hash(t) not in known]
            return AddResult(events=self._apply(scope, planned, meta, now, {}, checked=True), facts=texts)

    def _failed(self, op: Operation, exc: ModelOutputError, result: AddResult) -> None:
        self.stats.record_parse_failure(op, exc.raw)
        result.failures.append(f"{op.value}: {exc}")
        logger.warning("%s output could not be parsed; nothing applied (%s)", op.value, exc)

    def _related(self, scope: Scope, fact_vectors: dict[str, list[float]]) -> list[MemoryRecord]:
        """The union of each fact's top-k old memories, in first-seen order."""
        seen: dict[str, MemoryRecord] = {}
        for vector in fact_vectors.values():
            for record in self.store.query(scope, vector, self.config.update_top_k):
                seen.setdefault(record.id, record)
        return list(seen.values())

    def _apply(
        self,
        scope: Scope,
        planned: Sequence[PlannedOp],
        metadata: dict[str, Any],
        now: datetime,
        vectors: dict[str, list[float]],
        *,
        checked: bool = False,
    ) -> list[MemoryEvent]:
        """Turn planned ops into one journalled batch; ``checked``: ADD texts are known new."""
        stamp = _iso(now)
        events: list[MemoryEvent] = []
        writes: list[MemoryRecord] = []
        deletes: list[str] = []
        entries: list[HistoryEntry] = []
        dropped_images: list[str] = []
        batch_hashes: set[str] = set()
        for op in planned:
            if op.event is Event.ADD:
                assert op.text is not None
                digest = text_hash(op.text)
                if digest in batch_hashes or (not checked and self.store.ids_with_hash(scope, digest)):
                    continue  # an exact duplicate is stored once
                batch_hashes.add(digest)
                record = MemoryRecord(
                    id=str(uuid.uuid4()), text=op.text, hash=digest, created_at=stamp, metadata=dict(metadata),
                    user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id,
                )
                writes.append(record)
                events.append(MemoryEvent(record.id, record.text, Event.ADD))
                entries.append(HistoryEntry(record.id, "ADD", None, record.text, stamp))
            elif op.event is Event.UPDATE:
                assert op.target is not None and op.text is not None
                old = op.target
                record = MemoryRecord(
                    id=old.id, text=op.text, hash=text_hash(op.text), created_at=old.created_at, updated_at=stamp,
                    metadata={**old.metadata, **metadata}, user_id=old.user_id, agent_id=old.agent_id, run_id=old.run_id,
                )
                writes.append(record)
                events.append(MemoryEvent(old.id, op.text, Event.UPDATE, old.text))
                entries.append(HistoryEntry(old.id, "UPDATE", old.text, op.text, stamp))
            elif op.event is Event.DELETE:
                assert op.target is not None
                deletes.append(op.target.id)
                if op.target.metadata.get("memory_type") == "image":
                    dropped_images.append(str(op.target.metadata.get("image_id", "")))
                events.append(MemoryEvent(op.target.id, op.target.text, Event.DELETE, op.target.text))
                entries.append(HistoryEntry(op.target.id, "DELETE", op.target.text, None, stamp))
        self._commit(scope, writes, deletes, entries, vectors)
        for image_id in dropped_images:  # after the commit: a crash leaves a stray file, never a dangling memory
            self.image_store.delete(scope, image_id)
        return events

    def _commit(
        self,
        scope: Scope,
        writes: list[MemoryRecord],
        deletes: list[str],
        entries: list[HistoryEntry],
        vectors: dict[str, list[float]] | None = None,
    ) -> None:
        """Journal, apply to the store, then record the history (see :mod:`memlora_engine.history`).

        Runs under the store's write lock, so the journal never holds a batch of a
        live process; a batch larger than one atomic store write is split into
        several journalled batches, each applied whole or (after a crash) replayed.
        """
        if not writes and not deletes:
            return
        vectors = dict(vectors or {})
        missing = list(dict.fromkeys(r.text for r in writes if r.text not in vectors))
        vectors.update(zip(missing, self.embedder.embed(missing)))
        step = self.store.max_batch_size
        chunks = [writes[i : i + step] for i in range(0, len(writes), step)] or [[]]
        with self._locks.write():
            self._recover()
            for number, chunk in enumerate(chunks):
                last = number == len(chunks) - 1
                chunk_deletes = deletes if last else []
                ids = {r.id for r in chunk} | set(chunk_deletes)
                chunk_entries = [e for e in entries if e.memory_id in ids]
                batch_id = self.history_store.begin(scope, chunk, chunk_deletes, chunk_entries)
                _fault("journalled")
                try:
                    self.store.upsert(scope, chunk, [vectors[r.text] for r in chunk])
                except Exception:
                    # One store write is atomic: it failed whole, so nothing is half-applied.
                    self.history_store.abort(batch_id)
                    raise
                _fault("upserted")
                self.store.delete(scope, chunk_deletes)
                _fault("applied")
                self.history_store.commit(batch_id)
                self.store.sync(self.history_store.generation(), mine=True)
                _fault("committed")

    def _recover(self) -> None:
        """Finish, in order, the batches a crashed process journalled but did not commit.

        Called at open and before every write and read-modify-write, under the
        write lock, so a crashed worker's batch lands before anything that follows.
        A batch that cannot be finished now (say the store is unreachable) stays
        journalled, is logged, and is retried next time; it never blocks opening.
        """
        self._sync()
        if not self.history_store.has_pending():
            return
        with self._locks.write():
            batches = self.history_store.pending()
            for done, batch in enumerate(batches):
                try:
                    self._replay(batch)
                except MemLoRAError as exc:
                    logger.error(
                        "could not finish an interrupted write batch (%d of %d left; retried later): %s",
                        len(batches) - done, len(batches), exc,
                    )
                    return
            if batches:
                logger.warning("finished %d write batch(es) interrupted by an earlier crash", len(batches))

    def _sync(self) -> None:
        """Reload the store's view if another process wrote since we last looked."""
        if self.store.path is not None:
            self.store.sync(self.history_store.generation())

    def _replay(self, batch: PendingBatch) -> None:
        if batch.forget:
            self._forget(batch.scope)
            return
        vectors = self.embedder.embed([r.text for r in batch.writes]) if batch.writes else []
        self.store.upsert(batch.scope, batch.writes, vectors)
        self.store.delete(batch.scope, batch.deletes)
        self.history_store.commit(batch.batch_id)

    # -- reads ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        filters: dict[str, Any] | None = None,
        threshold: float | None = None,
    ) -> list[MemoryRecord]:
        """The scope's memories most similar to ``query``, best first, with ``score``."""
        scope = Scope(user_id, agent_id, run_id)
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        check_text(query, "query")
        k = self.config.search_limit if limit is None else limit
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"limit must be a positive integer, got {k!r}")
        self._sync()
        hits = self.store.query(scope, self.embedder.embed([query])[0], k, filters)
        if threshold is not None:
            hits = [h for h in hits if h.score is not None and h.score >= threshold]
        return hits

    def get(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None) -> MemoryRecord | None:
        """The memory ``memory_id`` of this scope, or None."""
        scope = Scope(user_id, agent_id, run_id)
        self._sync()
        found = self.store.fetch(scope, [_check_id(memory_id)])
        return found[0] if found else None

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict[str, Any] | None = None, limit: int | None = None) -> list[MemoryRecord]:
        """Every memory of the scope matching ``filters``, oldest first."""
        self._sync()
        return self.store.list(Scope(user_id, agent_id, run_id), filters, limit)

    def history(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                run_id: str | None = None) -> list[HistoryEntry]:
        """The audit trail of one memory of this scope, oldest first."""
        return self.history_store.entries(Scope(user_id, agent_id, run_id), _check_id(memory_id))

    # -- direct writes --------------------------------------------------------------------
    def _require(self, scope: Scope, memory_id: str) -> MemoryRecord:
        found = self.store.fetch(scope, [_check_id(memory_id)])
        if not found:
            raise MemoryNotFoundError(f"no memory {memory_id!r} in this scope")
        return found[0]

    def update(self, memory_id: str, text: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, metadata: dict[str, Any] | None = None) -> MemoryEvent:
        """Replace a memory's text (and merge ``metadata``)."""
        scope = Scope(user_id, agent_id, run_id)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("text must be a non-empty string")
        check_text(text, "text")
        meta = validate_metadata(metadata)
        with self._locks.scope(scope):
            self._recover()
            old = self._require(scope, memory_id)
            return self._apply(scope, [PlannedOp(Event.UPDATE, text.strip(), old)], meta, self._now(), {})[0]

    def delete(self, memory_id: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> MemoryEvent:
        """Delete one memory of this scope."""
        scope = Scope(user_id, agent_id, run_id)
        with self._locks.scope(scope):
            self._recover()
            old = self._require(scope, memory_id)
            return self._apply(scope, [PlannedOp(Event.DELETE, old.text, old)], {}, self._now(), {})[0]

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None) -> int:
        """Forget the scope: its memories, its history, and their text on disk. Returns the count removed."""
        scope = Scope(user_id, agent_id, run_id)
        with self._locks.scope(scope), self._locks.write():
            self._recover()
            count = self.store.count(scope)
            # Journalled: a crash part-way is finished by the next write or open.
            self.history_store.begin_forget(scope)
            self._forget(scope)
            return count

    def _forget(self, scope: Scope) -> None:
        self.store.drop(scope)
        _fault("dropped")
        self.image_store.drop(scope)
        self.session_store.clear(scope)
        _fault("sessions_cleared")
        self.history_store.forget(scope)  # last: it also drops the journal row
        self.store.sync(self.history_store.generation(), mine=True)

    def reset(self) -> None:
        """Forget every scope of this namespace and the whole history."""
        with self._locks.write():
            self.store.reset()
            self.image_store.clear()
            self.history_store.forget(None)
            self.store.sync(self.history_store.generation(), mine=True)
            self.session_store.clear_everything()

    # -- chat sessions (short-term buffer for the integrations) ----------------------------
    def append_chat(self, session_id: str, messages: Any, *, user_id: str | None = None,
                    agent_id: str | None = None, run_id: str | None = None, timestamp: Timestamp = None) -> None:
        """Append messages to a chat session of the scope (persisted; no extraction).

        A message dict may carry ``"extra"`` (a JSON-able dict) that comes back as is.
        """
        scope = Scope(user_id, agent_id, run_id)
        raw = messages if isinstance(messages, list) else [messages]
        normalized = normalize_messages(raw)
        for source, message in zip(raw, normalized):
            if isinstance(source, dict) and source.get("extra"):
                message["extra"] = source["extra"]  # type: ignore[assignment]
        self.session_store.append(scope, session_id, normalized, _iso(self._now(timestamp)))

    def chat_messages(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                      run_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The session's messages, oldest first (the last ``limit`` when given)."""
        return self.session_store.messages(Scope(user_id, agent_id, run_id), session_id, limit)

    def clear_chat(self, session_id: str, *, user_id: str | None = None, agent_id: str | None = None,
                   run_id: str | None = None) -> int:
        """Forget one chat session of the scope; long-term memories stay."""
        return self.session_store.clear(Scope(user_id, agent_id, run_id), session_id)

    # -- generation -------------------------------------------------------------------------
    def answer(
        self,
        question: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        filters: dict[str, Any] | None = None,
        timestamp: Timestamp = None,
        images: Sequence[Any] | None = None,
        route: str = "auto",
    ) -> Answer:
        """Answer ``question`` from the scope's most relevant memories.

        Routing (``route="auto"``): with a generator that ``supports_images``, a question
        that carries ``images``, or that refers to a photo (see
        :func:`~memlora_engine._vision.refers_to_image`) while a retrieved memory holds
        a stored image, goes to the ``vqa`` operation with that image and returns its
        short answer and ``reason``. Everything else goes to ``generation``; a
        text-only generator given ``images`` sees their captions (from
        ``captioner``) among the memories. ``route="vqa"`` or ``"text"`` forces a path.

        Raises:
            InvalidInputError: a bad ``route``, an unreadable image, or ``route="vqa"``
                with no image to look at.
            ConfigError: ``route="vqa"`` with a generator that does not take images.
        """
        if route not in ("auto", "vqa", "text"):
            raise InvalidInputError(f'route must be "auto", "vqa" or "text", got {route!r}')
        scope = Scope(user_id, agent_id, run_id)
        given = [load_image(i) for i in images] if images else []
        memories = self.search(
            question, user_id=user_id, agent_id=agent_id, run_id=run_id,
            limit=limit or self.config.answer_top_k, filters=filters,
        )
        if route == "vqa" and not self.sees_images:
            raise ConfigError("route='vqa' needs a generator that takes images (a VLM backbone)")
        if self.sees_images and route != "text":
            pictures = given
            if not pictures and (route == "vqa" or refers_to_image(question)):
                pictures = self._retrieved_image(scope, memories)
            if pictures:
                return self._vqa(question, pictures, memories)
            if route == "vqa":
                raise InvalidInputError("route='vqa' but no image was given or retrieved for this question")
        listing = [f"- {m.text}" for m in memories]
        if given and self.captioner is None:
            warnings.warn("answer() got images, but the generator does not take images and no captioner is set: "
                          "the images are ignored", stacklevel=2)
            given = []
        if given:  # text-only generator: the question's images as captions
            captions = [" ".join(str(self.captioner(i.pil())).split()) for i in given]  # type: ignore[misc]
            listing = [f"- The photo in the question shows: {c}" for c in captions if c] + listing
        text = self._call(
            Operation.GENERATION, None, memories="\n".join(listing) or "(no memories)", question=question.strip(),
            date=self._now(timestamp).date().isoformat(),
        ).text
        return Answer(text=text.strip(), memories=memories, image_ids=[i.id for i in given])

    def _retrieved_image(self, scope: Scope, memories: Sequence[MemoryRecord]) -> list[LoadedImage]:
        """The stored image of the best-ranked retrieved memory that has one (or none)."""
        for memory in memories:
            for image_id in image_ids_of(memory):
                if self.image_store.has(scope, image_id):
                    return [self.image_store.get(scope, image_id)]
        return []

    def _vqa(self, question: str, pictures: Sequence[LoadedImage], memories: list[MemoryRecord]) -> Answer:
        raw = self._call(Operation.VQA, VQA_SCHEMA, [p.pil() for p in pictures], question=question.strip()).text
        ids = [p.id for p in pictures]
        try:
            answer, reason = parse_vqa(raw)
        except ModelOutputError as exc:
            self.stats.record_parse_failure(Operation.VQA, raw)
            logger.warning("vqa output could not be parsed; answering with its raw text (%s)", exc)
            return Answer(text=strip_thinking(raw).strip(), memories=memories, operation="vqa", image_ids=ids,
                          failure=f"vqa: {exc}")
        return Answer(text=answer, memories=memories, operation="vqa", reason=reason, image_ids=ids)

    # -- export / import --------------------------------------------------------------------
    def export(self, destination: str | Path | IO[str], *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None) -> int:
        """Write the scope's memories as JSONL (one record a line). Returns the count."""
        records = self.get_all(user_id=user_id, agent_id=agent_id, run_id=run_id)
        lines = [json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for r in records]
        if isinstance(destination, (str, Path)):
            Path(destination).write_text("".join(lines), encoding="utf-8")
        else:
            destination.writelines(lines)
        return len(lines)

    def import_(self, source: str | Path | IO[str] | Iterable[str], *, user_id: str | None = None,
                agent_id: str | None = None, run_id: str | None = None) -> int:
        """Load JSONL written by :meth:`export`; ids, texts, times and metadata are kept.

        Records go to the given scope, or to the scope written in each line when no
        id is given. Existing memories with the same id are replaced.
        """
        override = Scope(user_id, agent_id, run_id) if (user_id or agent_id or run_id) else None
        if isinstance(source, (str, Path)):
            lines: Iterable[str] = Path(source).read_text(encoding="utf-8").splitlines()
        else:
            lines = source
        by_scope: dict[Scope, list[MemoryRecord]] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                record = MemoryRecord(
                    id=str(data["id"]), text=str(data["text"]), hash=str(data.get("hash") or text_hash(data["text"])),
                    created_at=str(data["created_at"]), updated_at=data.get("updated_at"),
                    user_id=data.get("user_id"), agent_id=data.get("agent_id"), run_id=data.get("run_id"),
                    metadata=validate_metadata(data.get("metadata")),
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInputError(f"line {number} is not a MemLoRA export record: {exc}") from exc
            scope = override or record.scope
            record.user_id, record.agent_id, record.run_id = scope.user_id, scope.agent_id, scope.run_id
            by_scope.setdefault(scope, []).append(record)
        stamp = _iso(self._now())
        for scope, records in by_scope.items():
            with self._locks.scope(scope):
                entries = [HistoryEntry(r.id, "ADD", None, r.text, stamp, actor="import") for r in records]
                self._commit(scope, records, [], entries)
        return sum(len(v) for v in by_scope.values())
