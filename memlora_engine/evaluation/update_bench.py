"""The developers' update benchmark: hand-written cases run through the engine's update step.

``data/update_cases.jsonl`` (shipped with the package) holds hand-written cases: the
old memories the engine would retrieve (shown to the model as ids "0", "1", ...),
the new facts, and one gold decision per fact. They are written by hand, apart from
any training data, and must never be used for training (docs/evaluation.md).

:func:`run_update_case` runs the engine's own update step
(:func:`~memlora_engine.steps.decide_updates`) for one case. Scoring is in
:mod:`memlora_engine.evaluation.update_scoring`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from memlora_engine.config import MemoryConfig
from memlora_engine.embeddings.base import Embedder
from memlora_engine.errors import InvalidInputError, ModelOutputError
from memlora_engine.evaluation._case_files import case_records
from memlora_engine.evaluation.update_scoring import EVENTS, CaseScore, Decision, align, exact_match, summarize
from memlora_engine.generator import Generator
from memlora_engine.ops import PlannedOp, Rejection, text_hash
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, decide_updates
from memlora_engine.store.in_memory import InMemoryStore
from memlora_engine.types import MemoryRecord, Operation, Scope

__all__ = [
    "UpdateCase",
    "UpdateOutcome",
    "default_cases_path",
    "evaluate_update",
    "load_update_cases",
    "run_update_case",
]


@dataclass(frozen=True)
class UpdateCase:
    """One hand-written case: ``gold[i]`` is the decision for ``facts[i]``."""

    id: str
    old: tuple[str, ...]
    facts: tuple[str, ...]
    gold: tuple[Decision, ...]
    date: str = "2024-06-01"
    references: tuple[str | None, ...] = ()  # the expected new text of each UPDATE (None elsewhere)


def default_cases_path() -> Path:
    """The shipped case file, ``memlora_engine/evaluation/data/update_cases.jsonl``."""
    return Path(str(resources.files("memlora_engine.evaluation"))) / "data" / "update_cases.jsonl"


def _case(data: dict[str, Any], where: str) -> UpdateCase:
    try:
        old = tuple(str(t) for t in data["old"])
        facts = tuple(str(t) for t in data["facts"])
        gold_items = list(data["gold"])
        case_id = str(data["id"])
    except (KeyError, TypeError) as exc:
        raise InvalidInputError(f"{where}: a case needs id, old, facts and gold ({exc})") from exc
    if not old or not facts or len(gold_items) != len(facts):
        raise InvalidInputError(f"{where}: needs old memories, facts and one gold decision per fact")
    gold: list[Decision] = []
    for item in gold_items:
        event = str(item.get("event", "")).upper()
        if event not in EVENTS:
            raise InvalidInputError(f"{where}: unknown gold event {item.get('event')!r}")
        memory_id = None if event == "ADD" else item.get("id")
        if event != "ADD" and (memory_id is None or not str(memory_id).isdigit() or int(memory_id) >= len(old)):
            raise InvalidInputError(f"{where}: {event} needs the id of one of the {len(old)} old memories")
        gold.append(Decision(event, None if memory_id is None else str(memory_id)))
    named = [d.id for d in gold if d.id is not None]
    if len(named) != len(set(named)):
        raise InvalidInputError(f"{where}: two gold decisions on one old memory (the engine allows one op per memory)")
    return UpdateCase(
        id=case_id, old=old, facts=facts, gold=tuple(gold), date=str(data.get("date", "2024-06-01")),
        references=tuple(item.get("text") if d.event == "UPDATE" else None for item, d in zip(gold_items, gold)),
    )


def load_update_cases(path: str | os.PathLike[str] | None = None) -> list[UpdateCase]:
    """Read and check a case file (JSON lines; ``#`` lines and blank lines are skipped).

    Raises:
        InvalidInputError: a malformed case, an id outside the old memories, two gold
            decisions on one memory, or a repeated case id.
    """
    source = Path(path) if path is not None else default_cases_path()
    cases = [_case(data, where) for where, data in case_records(source, "update cases")]
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise InvalidInputError(f"{source.name}: repeated case ids")
    return cases


@dataclass
class UpdateOutcome:
    """One update call: the raw text, what the engine applies, what it rejects or adds for undecided facts."""

    raw: str
    planned: list[PlannedOp] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None  # the parse failure, when the output could not be parsed
    style: str = ""

    def decisions(self) -> tuple[Decision, ...] | None:
        """The applied changes as ``(event, model id)`` decisions; None when unparsable."""
        if self.error is not None:
            return None
        return tuple(Decision(p.event.value, None if p.target is None else p.target.id) for p in self.planned)


def run_update_case(generator: Generator, config: MemoryConfig, old_texts: Sequence[str], facts: Sequence[str],
                    date: str, embedder: Embedder | None = None) -> UpdateOutcome:
    """Run the engine's update step (:func:`~memlora_engine.steps.decide_updates`) once.

    The old memories' record ids are "0", "1", ... in the case's order, so a planned op's
    target id is the case's (gold) id. Everything else is the engine's: the prompt-style
    rule, schema and budget, the validation, the undecided-fact policy
    (``config.uncovered_facts``) and duplicate ADDs as NONE, and, given the ``embedder``
    ``Memory`` would use, each fact's listing as ``Memory`` builds it (with
    ``config.update_context="own"``, the default: the ``update_top_k`` memories nearest the
    fact, most similar first, numbered "0", "1", ... in that call) and the check of NONEs
    against the memory they name (``config.none_min_similarity``). Without an embedder,
    every call lists the case's memories in the case's order.
    """
    records = [MemoryRecord(id=str(i), text=text, hash=text_hash(text), created_at=date)
               for i, text in enumerate(old_texts)]
    caller = ModelCaller(config, generator, Stats())
    style = caller.prompt_style(Operation.UPDATE)
    # Memory gives each fact's call the update_top_k memories nearest that fact, most similar
    # first (update_context="own"); without an embedder the case's order is all there is.
    nearest = _nearest(records, facts, embedder, config.update_top_k) if embedder is not None else None
    try:
        plan = decide_updates(caller, records, facts, date=date, embedder=embedder, nearest=nearest)
    except ModelOutputError as exc:
        return UpdateOutcome(raw=exc.raw, error=str(exc), style=style)
    return UpdateOutcome(raw=plan.raw, planned=plan.planned, rejections=plan.rejected, uncovered=plan.uncovered,
                         duplicates=plan.duplicates, style=style)


def _nearest(records: Sequence[MemoryRecord], facts: Sequence[str], embedder: Embedder,
             k: int) -> dict[str, list[MemoryRecord]]:
    """Each fact's ``k`` nearest records, most similar first, ranked by the engine's in-process store."""
    vectors = embedder.embed([*facts, *(r.text for r in records)])
    scope = Scope(user_id="update-bench")
    store = InMemoryStore()
    store.upsert(scope, records, vectors[len(facts):])
    return {fact: store.query(scope, vector, k) for fact, vector in zip(facts, vectors[: len(facts)], strict=True)}


def evaluate_update(generator: Generator, cases: Sequence[UpdateCase], config: MemoryConfig | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    embedder: Embedder | None = None) -> dict[str, Any]:
    """Run every case and score it: ``{"summary": ..., "rows": [per-case record, ...]}``.

    ``embedder``: the one the engine would use (NONE checks, :func:`run_update_case`).
    """
    config = config or MemoryConfig()
    rows: list[dict[str, Any]] = []
    scores: list[CaseScore] = []
    for number, case in enumerate(cases, 1):
        outcome = run_update_case(generator, config, case.old, case.facts, case.date, embedder)
        predicted = outcome.decisions()
        score = CaseScore(case.gold, predicted, len(outcome.rejections))
        scores.append(score)
        rows.append({
            "id": case.id,
            "style": outcome.style,
            "exact": exact_match(case.gold, predicted),
            "gold": [[d.event, d.id] for d in case.gold],
            "predicted": None if predicted is None else [[d.event, d.id] for d in predicted],
            "pairs": align(case.gold, predicted),
            "rejected": [r.to_dict() for r in outcome.rejections],
            "uncovered": outcome.uncovered,
            "duplicates": outcome.duplicates,
            "error": outcome.error,
            "raw": outcome.raw,
        })
        if progress is not None:
            progress(number, len(cases))
    return {"summary": summarize(scores), "rows": rows}
