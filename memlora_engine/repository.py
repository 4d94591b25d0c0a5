"""Durable writes per scope: locks, the write journal, crash recovery and forgetting.

Every change to the memories goes through :meth:`Repository.commit`: the batch is
journalled in the history database, applied to the :class:`~memlora_engine.store.base.Store`,
then committed (history rows written, journal row dropped) in one transaction. A
process that dies in between leaves the journal row, and the next write or open in
any process replays it (:meth:`Repository.recover`), so the store and the audit
history always agree. See :mod:`memlora_engine.history` and :mod:`memlora_engine._locks`.

Crash tests pass ``faults``, a callable told the name of each point in
:data:`FAULT_POINTS` as a write reaches it (it may kill the process there);
production code passes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from memlora_engine._locks import StoreLocks
from memlora_engine._time import iso
from memlora_engine._vision import PreparedImage, image_memory_text
from memlora_engine.embeddings.base import Embedder, blend
from memlora_engine.errors import InvalidInputError, MemLoRAError, MemoryNotFoundError
from memlora_engine.history import HistoryStore, PendingBatch
from memlora_engine.images import ImageStore
from memlora_engine.messages import check_text
from memlora_engine.ops import PlannedOp, text_hash
from memlora_engine.sessions import SessionStore
from memlora_engine.store.base import Store, check_merged_metadata
from memlora_engine.types import AddResult, Event, HistoryEntry, MemoryEvent, MemoryRecord, Scope

__all__ = ["FAULT_POINTS", "FaultHook", "Repository", "check_id", "new_memory_id", "superseded_id", "text_hash"]

logger = logging.getLogger(__name__)

FaultHook = Callable[[str], None]
"""Called with a point of :data:`FAULT_POINTS` each time a write reaches it."""

FAULT_POINTS = ("journalled", "upserted", "applied", "committed", "dropped", "sessions_cleared")
"""The steps of a write between which a crash test may kill the process, in order:
a batch journalled, upserted into the store, its deletes applied, committed to the
history; a forgotten scope dropped from the store, its chat sessions cleared."""


_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "memlora:memory")


def new_memory_id(scope: Scope, digest: str) -> str:
    """The id of a new memory of text hash ``digest``: the same in every worker for the same scope and text.

    Two workers adding one fact at once write one record (an upsert of the same id),
    even where nothing serialises them.
    """
    return str(uuid.uuid5(_IDS, f"{scope.key}\n{digest}"))


def superseded_id(memory_id: str, digest: str) -> str:
    """The id of the superseded record that keeps text of hash ``digest`` replaced in memory ``memory_id``.

    One per memory and text: a value replaced twice (A -> B -> A -> B) is kept once.
    """
    return str(uuid.uuid5(_IDS, f"superseded\n{memory_id}\n{digest}"))


def check_id(memory_id: object) -> str:
    """``memory_id`` if it is a usable memory id, else :class:`InvalidInputError`."""
    if not isinstance(memory_id, str) or not memory_id:
        raise InvalidInputError(f"memory_id must be a non-empty string, got {memory_id!r}")
    return check_text(memory_id, "memory_id")


class Repository:
    """The durable side of one :class:`~memlora_engine.memory.Memory`.

    Args:
        store: the vector store.
        history: the audit history, which also holds the write journal.
        sessions: the chat sessions (forgotten with their scope).
        images: the stored image files (forgotten with their scope).
        embedder: embeds texts written without a vector (imports, direct updates, replays).
        faults: the crash-test hook (see :data:`FAULT_POINTS`); None in production.
    """

    def __init__(
        self,
        store: Store,
        history: HistoryStore,
        sessions: SessionStore,
        images: ImageStore,
        embedder: Embedder,
        *,
        source_weight: float | None = None,
        faults: FaultHook | None = None,
    ) -> None:
        self.store = store
        self.history = history
        self.sessions = sessions
        self.images = images
        self.embedder = embedder
        self.source_weight = source_weight
        # A database server is shared by workers on several machines: its advisory
        # locks serialise them, where file locks only reach one machine.
        self.locks = StoreLocks(store.lock_directory, server=history.database.lock if history.database.shared else None)
        self._faults = faults

    def _fault(self, point: str) -> None:
        if self._faults is not None:
            self._faults(point)

    # -- reading a current view -------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the store's view if another process wrote since we last looked."""
        if self.store.lock_directory is not None:
            self.store.refresh(self.history.generation())

    def recover(self) -> None:
        """Finish, in order, the batches a crashed process journalled but did not commit.

        Called at open and before every write and read-modify-write, under the
        write lock, so a crashed worker's batch lands before anything that follows.
        A batch that cannot be finished now (say the store is unreachable) stays
        journalled, is logged, and is retried next time; it never blocks opening.
        """
        self.refresh()
        if not self.history.has_pending():
            return
        with self.locks.write():
            batches = self.history.pending()
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

    def _replay(self, batch: PendingBatch) -> None:
        if batch.forget:
            self._drop(batch.scope)
            return
        self.store.upsert(batch.scope, batch.writes, self.record_vectors(batch.writes))
        self.store.delete(batch.scope, batch.deletes)
        self.history.commit(batch.batch_id)

    @contextmanager
    def locked(self, scope: Scope) -> Iterator[None]:
        """Hold the scope's lock over a read-modify-write, with every crashed batch landed first."""
        with self.locks.scope(scope):
            self.recover()
            yield

    def nearest(self, scope: Scope, vectors: Iterable[Sequence[float]], k: int) -> list[list[MemoryRecord]]:
        """Each vector's top-``k`` memories, most similar first."""
        return [self.store.query(scope, vector, k) for vector in vectors]

    def require(self, scope: Scope, memory_id: str) -> MemoryRecord:
        """The memory ``memory_id`` of ``scope``, or :class:`MemoryNotFoundError`."""
        found = self.store.fetch(scope, [check_id(memory_id)])
        if not found:
            raise MemoryNotFoundError(f"no memory {memory_id!r} in this scope")
        return found[0]

    # -- writes -------------------------------------------------------------------------------
    def add_texts(self, scope: Scope, texts: list[str], metadata: dict[str, Any], now: datetime) -> list[MemoryEvent]:
        """Store ``texts`` as they are, skipping those the scope already holds (one hash lookup)."""
        unique = list(dict.fromkeys(texts))
        with self.locked(scope):
            known = self.store.hashes_present(scope, [text_hash(t) for t in unique])
            planned = [PlannedOp(Event.ADD, text=t) for t in unique if text_hash(t) not in known]
            return self.apply(scope, planned, metadata, now, {}, checked=True)

    def add_many(self, scope: Scope, texts: Iterable[str], metadata: dict[str, Any], now: datetime,
                 batch_size: int) -> AddResult:
        """Store ``texts`` as they are, ``batch_size`` at a time, each batch committed on its own."""
        result = AddResult()
        chunk: list[str] = []
        for text in texts:
            if not isinstance(text, str):
                raise InvalidInputError(f"texts must be strings, got {type(text).__name__}")
            check_text(text, "text")
            if text.strip():
                chunk.append(text.strip())
            if len(chunk) >= batch_size:
                result.events += self.add_texts(scope, chunk, metadata, now)
                result.facts += chunk
                chunk = []
        if chunk:
            result.events += self.add_texts(scope, chunk, metadata, now)
            result.facts += chunk
        return result

    def add_image(
        self, scope: Scope, prepared: PreparedImage, metadata: dict[str, Any], now: datetime
    ) -> list[MemoryEvent] | None:
        """Store the image file and its image memory; None when the scope already has this photo.

        Duplicates are decided by image, not by text: two photos that both read "Alice
        shared a photo" are two memories; the same photo shared again is one.
        """
        with self.locked(scope):
            if self.store.list(scope, {"image_id": prepared.image.id}, 1):
                return None
            self.images.put(scope, prepared.image)
            image_meta = {**metadata, "memory_type": "image", "image_id": prepared.image.id}
            if prepared.caption:
                image_meta["caption"] = prepared.caption
            op = PlannedOp(Event.ADD, text=image_memory_text(prepared))
            return self.apply(scope, [op], image_meta, now, {}, checked=True)

    def update(self, scope: Scope, memory_id: str, text: str, metadata: dict[str, Any],
               clock: Callable[[], datetime]) -> MemoryEvent:
        """Replace one memory's text (and merge ``metadata``), stamped ``clock()`` once the lock is held."""
        with self.locked(scope):
            old = self.require(scope, memory_id)
            return self.apply(scope, [PlannedOp(Event.UPDATE, text, old)], metadata, clock(), {})[0]

    def put(self, scope: Scope, memory_id: str, text: str, metadata: dict[str, Any],
            clock: Callable[[], datetime]) -> MemoryEvent:
        """Write one memory under ``memory_id``: an ADD when new, else an UPDATE replacing text and metadata.

        A keyed write, as a key-value store makes one: no duplicate check (two ids may
        hold the same text) and the old metadata is replaced, not merged.
        """
        with self.locked(scope):
            found = self.store.fetch(scope, [check_id(memory_id)])
            stamp = iso(clock())
            old = found[0] if found else None
            record = MemoryRecord(
                id=memory_id, text=text, hash=text_hash(text), created_at=old.created_at if old else stamp,
                updated_at=stamp if old else None, metadata=dict(metadata),
                user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id,
            )
            if old is None:
                event = MemoryEvent(memory_id, text, Event.ADD)
                entry = HistoryEntry(memory_id, "ADD", None, text, stamp)
            else:
                event = MemoryEvent(memory_id, text, Event.UPDATE, old.text)
                entry = HistoryEntry(memory_id, "UPDATE", old.text, text, stamp)
            self.commit(scope, [record], [], [entry])
            return event

    def delete(self, scope: Scope, memory_id: str, clock: Callable[[], datetime]) -> MemoryEvent:
        """Delete one memory, stamped ``clock()`` once the lock is held."""
        with self.locked(scope):
            old = self.require(scope, memory_id)
            return self.apply(scope, [PlannedOp(Event.DELETE, old.text, old)], {}, clock(), {})[0]

    def apply(
        self,
        scope: Scope,
        planned: Sequence[PlannedOp],
        metadata: dict[str, Any],
        now: datetime,
        vectors: dict[str, list[float]],
        *,
        checked: bool = False,
        keep_superseded: bool = False,
        sources: Mapping[str, str] | None = None,
    ) -> list[MemoryEvent]:
        """Turn planned ops into one journalled batch; ``checked``: ADD texts are known new.

        ``vectors`` holds embeddings already computed (by text); the rest are embedded here.
        ``keep_superseded``: an UPDATE also writes the text it replaces as a superseded
        record (:attr:`~memlora_engine.types.MemoryRecord.superseded_by`), in the same batch.
        ``sources``: the conversation each new text was extracted from
        (:attr:`~memlora_engine.types.MemoryRecord.source`); a text not in it has none.
        """
        sources = sources or {}
        stamp = iso(now)
        events: list[MemoryEvent] = []
        writes: list[MemoryRecord] = []
        deletes: list[str] = []
        entries: list[HistoryEntry] = []
        dropped_images: list[str] = []
        batch_hashes: set[str] = set()
        # The deterministic ids of the ADDs that already name a memory, with that memory's hash.
        # An image memory's id also names its photo: two photos that read alike are two memories.
        image_id = metadata.get("image_id")

        def id_of(digest: str) -> str:
            return new_memory_id(scope, digest if image_id is None else f"{digest}\n{image_id}")

        ids = [id_of(text_hash(op.text)) for op in planned if op.event is Event.ADD and op.text]
        taken = {r.id: r.hash for r in self.store.fetch(scope, ids)} if ids else {}
        targeted = {op.target.id for op in planned if op.target is not None}
        for op in planned:
            if op.event is Event.ADD:
                assert op.text is not None
                digest = text_hash(op.text)
                memory_id = id_of(digest)
                if digest in batch_hashes or (not checked and self.store.ids_with_hash(scope, digest)):
                    continue  # an exact duplicate is stored once
                if memory_id in targeted or memory_id in taken:
                    if taken.get(memory_id) == digest and memory_id not in targeted:
                        continue  # another worker stored this very fact a moment ago
                    memory_id = str(uuid.uuid4())  # that id's memory now holds another text: keep it
                batch_hashes.add(digest)
                record = MemoryRecord(
                    id=memory_id, text=op.text, hash=digest, created_at=stamp, metadata=dict(metadata),
                    user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id, source=sources.get(op.text),
                )
                writes.append(record)
                events.append(MemoryEvent(record.id, record.text, Event.ADD))
                entries.append(HistoryEntry(record.id, "ADD", None, record.text, stamp))
            elif op.event is Event.UPDATE:
                assert op.target is not None and op.text is not None
                old = op.target
                record = MemoryRecord(
                    id=old.id, text=op.text, hash=text_hash(op.text), created_at=old.created_at, updated_at=stamp,
                    metadata=check_merged_metadata({**old.metadata, **metadata}),
                    user_id=old.user_id, agent_id=old.agent_id, run_id=old.run_id, source=sources.get(op.text),
                )
                writes.append(record)
                if keep_superseded and old.text != op.text:
                    digest = old.hash or text_hash(old.text)
                    writes.append(replace(old, id=superseded_id(old.id, digest), hash=digest, score=None,
                                          metadata=dict(old.metadata), superseded_by=old.id))
                events.append(MemoryEvent(old.id, op.text, Event.UPDATE, old.text))
                entries.append(HistoryEntry(old.id, "UPDATE", old.text, op.text, stamp))
            elif op.event is Event.DELETE:
                assert op.target is not None
                deletes.append(op.target.id)
                if op.target.metadata.get("memory_type") == "image":
                    dropped_images.append(str(op.target.metadata.get("image_id", "")))
                events.append(MemoryEvent(op.target.id, op.target.text, Event.DELETE, op.target.text))
                entries.append(HistoryEntry(op.target.id, "DELETE", op.target.text, None, stamp))
        self.commit(scope, writes, deletes, entries, vectors)
        for image_id in dropped_images:  # after the commit: a crash leaves a stray file, never a dangling memory
            self.images.delete(scope, image_id)
        return events

    def import_records(self, scope: Scope, records: list[MemoryRecord], stamp: str) -> None:
        """Write exported records as they are (ids, times, metadata), replacing same ids (an UPDATE).

        A superseded record is written as one, with no history entry of its own (the
        history of the memory that replaced it holds its text).
        """
        with self.locked(scope):
            old = {r.id: r.text for r in self.store.fetch(scope, [r.id for r in records])}
            entries = [HistoryEntry(r.id, "UPDATE" if r.id in old else "ADD", old.get(r.id), r.text, stamp,
                                    actor="import") for r in records if r.superseded_by is None]
            self.commit(scope, records, [], entries)

    def record_vectors(self, records: Sequence[MemoryRecord],
                       known: Mapping[str, list[float]] | None = None) -> list[list[float]]:
        """The vector each record is stored under: its text's embedding (``known`` holds some, by text),
        blended with its source's (:func:`~memlora_engine.embeddings.base.blend`, ``source_weight``)
        when it has one.

        Every write goes through here (a batch, its replay after a crash, an import), so a
        memory's vector is always computed from what is stored with it.
        """
        texts = dict(known or {})
        wanted = [r.text for r in records if r.text not in texts]
        if self.source_weight is not None:
            wanted += [r.source for r in records if r.source is not None and r.source not in texts]
        missing = list(dict.fromkeys(wanted))
        texts.update(zip(missing, self.embedder.embed(missing), strict=True))
        if self.source_weight is None:
            return [texts[r.text] for r in records]
        return [texts[r.text] if r.source is None else blend(texts[r.text], texts[r.source], self.source_weight)
                for r in records]

    def commit(
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
        stored = self.record_vectors(writes, vectors)
        step = self.store.max_batch_size
        starts = range(0, len(writes), step) or range(1)
        chunks = [(writes[i : i + step], stored[i : i + step]) for i in starts]
        with self.locks.write():
            self.recover()
            for number, (chunk, chunk_vectors) in enumerate(chunks):
                last = number == len(chunks) - 1
                chunk_deletes = deletes if last else []
                ids = {r.id for r in chunk} | set(chunk_deletes)
                chunk_entries = [e for e in entries if e.memory_id in ids]
                batch_id = self.history.begin(scope, chunk, chunk_deletes, chunk_entries)
                self._fault("journalled")
                try:
                    self.store.upsert(scope, chunk, chunk_vectors)
                except Exception:
                    # One store write is atomic: it failed whole, so nothing is half-applied.
                    self.history.abort(batch_id)
                    raise
                self._fault("upserted")
                self.store.delete(scope, chunk_deletes)
                self._fault("applied")
                self.history.commit(batch_id)
                self.store.refresh(self.history.generation(), mine=True)
                self._fault("committed")

    # -- forgetting ---------------------------------------------------------------------------
    def forget(self, scope: Scope) -> int:
        """Forget the scope: its memories, history, images, chat sessions. Returns the memories removed."""
        with self.locks.scope(scope), self.locks.write():
            self.recover()
            count = self.store.count(scope)
            # Journalled: a crash part-way is finished by the next write or open.
            self.history.begin_forget(scope)
            self._drop(scope)
            return count

    def _drop(self, scope: Scope) -> None:
        self.store.drop(scope)
        self._fault("dropped")
        self.images.drop(scope)
        self.sessions.clear(scope)
        self._fault("sessions_cleared")
        self.history.forget(scope)  # last: it also drops the journal row
        self.store.refresh(self.history.generation(), mine=True)

    def scopes(self, user_id: str | None, agent_id: str | None, run_id: str | None) -> list[Scope]:
        """The scopes with memories, history or chat whose ids include the given ones (None: any)."""
        found = set(self.store.scopes()) | self.history.scopes() | self.sessions.scopes()
        return sorted((s for s in found if s.within(user_id, agent_id, run_id)), key=lambda s: s.key)

    def reset(self) -> None:
        """Forget every scope and the whole history."""
        with self.locks.write():
            self.store.reset()
            self.images.clear()
            self.history.forget(None)
            self.store.refresh(self.history.generation(), mine=True)
            self.sessions.clear_everything()
