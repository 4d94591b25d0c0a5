"""The consolidation check: does memory answer with the newest of several contradicting values?

Each *history* (hand-written, shipped as ``evaluation/data/consolidation.jsonl``; never
training data) is one person and one single-valued attribute (a city, a job, a car, ...)
stated in 2, 3 or 5 successive chat turns, each contradicting the one before. The runner
ingests the turns one ``Memory.add`` at a time into a fresh in-memory scope, a week apart,
then asks the history's question. An answer is scored:

* ``newest``: it names the newest value (or one of its aliases) and no older value;
* ``stale``: it names an older value only;
* ``both``: the newest and an older value;
* ``neither``: no value at all.

Beside the verdicts, each history reports what the engine did: the applied events
(ADD/UPDATE/DELETE from the ``AddResult``s), the update expert's own decisions including
NONE (read from its raw outputs), ``stats["update"]``'s ``uncovered_facts``,
``duplicate_adds`` and ``unchanged_updates``, and the memories left at the end (how many still hold an older value).
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import InvalidInputError
from memlora_engine.evaluation._case_files import case_records
from memlora_engine.evaluation.memory_events import EVENTS, decided_events
from memlora_engine.evaluation.recording import RecordingGenerator
from memlora_engine.generator import Generator, SupportsAdapters
from memlora_engine.memory import Memory
from memlora_engine.operations import PIPELINE_OPERATIONS

__all__ = [
    "EVENTS",
    "GAP",
    "REPLY",
    "START",
    "VERDICTS",
    "History",
    "default_histories_path",
    "evaluate_consolidation",
    "format_summary",
    "load_histories",
    "mentions",
    "normalize",
    "run_history",
    "summarize",
    "verdict",
]

VERDICTS = ("newest", "stale", "both", "neither")
REPLY = "Got it."
"""The assistant's neutral reply after each step. One reply for all: the shipped extraction expert
extracts nothing from some turns followed by "Okay, I'll remember that." (or by no reply) that it
reads well followed by "Got it." (results/consolidation/README.md), which would confound the check."""
START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
GAP = timedelta(days=7)


# -- scoring ------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """Casefold, drop accents and punctuation, collapse spaces: ``"Kraków!"`` -> ``"krakow"``."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def mentions(text: str, spellings: Iterable[str]) -> bool:
    """True when one of ``spellings`` occurs in ``text`` as whole words (after :func:`normalize`)."""
    padded = f" {normalize(text)} "
    return any(f" {n} " in padded for n in map(normalize, spellings) if n)


def verdict(answer: str, newest: Iterable[str], older: Iterable[Iterable[str]]) -> str:
    """Score one answer: ``newest`` holds the newest value's spellings, ``older`` each older value's."""
    new = mentions(answer, newest)
    old = any(mentions(answer, spellings) for spellings in older)
    if new:
        return "both" if old else "newest"
    return "stale" if old else "neither"


# -- the histories ------------------------------------------------------------------------
@dataclass(frozen=True)
class History:
    """One person's attribute, stated ``len(steps)`` times with a new value each time.

    Attributes:
        id: unique, e.g. ``"l3-07"``.
        person: who speaks (the user turn's ``name``) and whom the question names.
        attribute: what changes ("city", "car", ...), for the report.
        steps: the user's chat turns, oldest first.
        values: the value each step states (the last one is the gold answer).
        question: asked after the last step.
        aliases: other accepted spellings, by value.
    """

    id: str
    person: str
    attribute: str
    steps: tuple[str, ...]
    values: tuple[str, ...]
    question: str
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.steps)

    @property
    def newest(self) -> str:
        return self.values[-1]

    @property
    def older(self) -> tuple[str, ...]:
        return self.values[:-1]

    @property
    def user_id(self) -> str:
        return "consolidation-" + self.id

    def spellings(self, value: str) -> tuple[str, ...]:
        """``value`` and its aliases."""
        return (value, *self.aliases.get(value, ()))

    def score(self, text: str) -> str:
        """The :func:`verdict` of ``text`` for this history."""
        return verdict(text, self.spellings(self.newest), [self.spellings(v) for v in self.older])

    def stale_memories(self, texts: Iterable[str]) -> int:
        """How many of ``texts`` name an older value and not the newest."""
        return sum(self.score(t) == "stale" for t in texts)


def default_histories_path() -> Path:
    """The shipped hand-written histories."""
    return Path(str(resources.files("memlora_engine.evaluation").joinpath("data", "consolidation.jsonl")))


def _history(record: Any, where: str) -> History:
    try:
        history = History(
            id=str(record["id"]), person=str(record["person"]), attribute=str(record["attribute"]),
            steps=tuple(str(s) for s in record["steps"]), values=tuple(str(v) for v in record["values"]),
            question=str(record["question"]),
            aliases={str(k): tuple(str(a) for a in v) for k, v in dict(record.get("aliases") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{where}: not a consolidation history ({exc!r})") from exc
    if history.length < 2 or len(history.values) != history.length:
        raise InvalidInputError(f"{where}: a history needs two or more steps and one value per step")
    unknown = set(history.aliases) - set(history.values)
    if unknown:
        raise InvalidInputError(f"{where}: aliases for values it does not have: {sorted(unknown)}")
    for step, value in zip(history.steps, history.values):
        if not mentions(step, history.spellings(value)):
            raise InvalidInputError(f"{where}: step {step!r} does not state its value {value!r}")
    for value in history.values:  # scoring must be able to tell every value from every other
        for other in history.values:
            if other != value and mentions(" ".join(history.spellings(value)), history.spellings(other)):
                raise InvalidInputError(f"{where}: {value!r} and {other!r} cannot be told apart")
    return history


def load_histories(path: str | Path | None = None, lengths: Iterable[int] | None = None) -> list[History]:
    """Read a histories JSONL (default: the shipped one), keeping the given ``lengths``.

    Raises:
        InvalidInputError: a line that is not a valid history, or two with one id.
    """
    source = Path(path) if path is not None else default_histories_path()
    histories = [_history(record, where) for where, record in case_records(source, "histories")]
    ids = Counter(h.id for h in histories)
    if any(n > 1 for n in ids.values()):
        raise InvalidInputError(f"{source.name}: repeated ids {sorted(i for i, n in ids.items() if n > 1)}")
    wanted = set(lengths) if lengths is not None else None
    return [h for h in histories if wanted is None or h.length in wanted]


# -- the run ------------------------------------------------------------------------------
def run_history(
    history: History,
    generator: Generator,
    embedder: Embedder,
    *,
    config: MemoryConfig | None = None,
    start: datetime = START,
    gap: timedelta = GAP,
    reply: str = REPLY,
) -> dict[str, Any]:
    """Ingest ``history`` into a fresh in-memory ``Memory``, ask its question, score the answer.

    Each step is one ``add`` of the user's turn (named ``history.person``) and the
    assistant's ``reply``, ``gap`` after the previous one. ``config``'s ``store`` is replaced by
    ``"memory"``. Returns the per-history record (see :func:`summarize` for the fields).
    """
    # The recorder reports the adapters the generator has, so the engine picks the same prompts.
    has = [op for op in PIPELINE_OPERATIONS if isinstance(generator, SupportsAdapters) and generator.has_adapter(op)]
    log = io.StringIO()
    recorder = RecordingGenerator(generator, has, log=log)
    memory = Memory(replace(config or MemoryConfig(), store="memory"), generator=recorder, embedder=embedder)
    applied: Counter[str] = Counter()
    facts: list[list[str]] = []
    failures: list[str] = []
    rejected = 0
    try:
        for i, step in enumerate(history.steps):
            messages = [{"role": "user", "name": history.person, "content": step},
                        {"role": "assistant", "content": reply}]
            result = memory.add(messages, user_id=history.user_id, timestamp=start + i * gap)
            applied.update(e.event.value for e in result.events)
            facts.append(list(result.facts))
            failures += result.failures
            rejected += len(result.rejected)
        answer = memory.answer(history.question, user_id=history.user_id, timestamp=start + history.length * gap)
        memories = [r.text for r in memory.get_all(user_id=history.user_id)]
        update = memory.stats["update"]
    finally:
        memory.close()
    decided, unparsed = decided_events(json.loads(line) for line in log.getvalue().splitlines())
    return {
        "id": history.id, "length": history.length, "attribute": history.attribute, "question": history.question,
        "newest": history.newest, "older": list(history.older), "answer": answer.text,
        "verdict": history.score(answer.text), "memories": memories, "memory_count": len(memories),
        "stale_memories": history.stale_memories(memories), "facts": facts,
        "applied": {e: applied[e] for e in EVENTS if e != "NONE"},
        "decided": decided,  # as the model wrote them, "other" included (decided_events)
        "update_calls": update.calls, "uncovered_facts": update.uncovered_facts, "duplicate_adds": update.duplicate_adds,
        "unchanged_updates": update.unchanged_updates,
        "rejected_ops": rejected, "unparsed_updates": unparsed, "failures": failures,
    }


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per length (``"2"``, ``"3"``, ...): verdict shares, memory counts and event totals of ``rows``."""
    by_length: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_length.setdefault(int(row["length"]), []).append(row)
    summary: dict[str, dict[str, Any]] = {}
    for length in sorted(by_length):
        group = by_length[length]
        n = len(group)
        verdicts = Counter(str(r["verdict"]) for r in group)

        def total(key: str, group: list[Mapping[str, Any]] = group) -> dict[str, int]:
            counts: Counter[str] = Counter()
            for r in group:
                counts.update(r[key])
            return dict(counts)

        summary[str(length)] = {
            "histories": n,
            **{v: round(verdicts[v] / n, 4) for v in VERDICTS},
            "mean_memory_count": round(sum(r["memory_count"] for r in group) / n, 2),
            "mean_stale_memories": round(sum(r["stale_memories"] for r in group) / n, 2),
            "applied": total("applied"),
            "decided": total("decided"),
            "update_calls": sum(r["update_calls"] for r in group),
            "uncovered_facts": sum(r["uncovered_facts"] for r in group),
            "duplicate_adds": sum(r["duplicate_adds"] for r in group),
            "unchanged_updates": sum(r["unchanged_updates"] for r in group),
            "rejected_ops": sum(r["rejected_ops"] for r in group),
            "failures": sum(len(r["failures"]) for r in group),
        }
    return summary


def evaluate_consolidation(
    histories: Sequence[History],
    generator: Generator,
    embedder: Embedder,
    *,
    config: MemoryConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every history (see :func:`run_history`); returns ``{"summary": ..., "rows": [...]}``."""
    rows = []
    for done, history in enumerate(histories, 1):
        rows.append(run_history(history, generator, embedder, config=config))
        if progress is not None:
            progress(done, len(histories))
    return {"summary": summarize(rows), "rows": rows}


def format_summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table: one line per length."""
    lines = [f"{'length':>6} {'n':>3} {'newest':>7} {'stale':>6} {'both':>6} {'neither':>8} {'memories':>9}"
             f" {'stale mem':>9}  events applied (decided)  uncovered dup-adds"]
    for length, s in summary.items():
        events = " ".join(f"{e}={s['applied'].get(e, 0) if e != 'NONE' else '-'}({s['decided'].get(e, 0)})"
                          for e in EVENTS)
        lines.append(f"{length:>6} {s['histories']:>3} {s['newest']:>7.0%} {s['stale']:>6.0%} {s['both']:>6.0%}"
                     f" {s['neither']:>8.0%} {s['mean_memory_count']:>9.2f} {s['mean_stale_memories']:>9.2f}"
                     f"  {events}  {s['uncovered_facts']:>9} {s['duplicate_adds']:>8}")
    return "\n".join(lines)
