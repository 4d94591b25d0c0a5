"""Extraction coverage: the facts extracted per session against LoCoMo's ``observation`` facts.

LoCoMo's authors wrote, per session, the facts each speaker revealed
("Caroline attended an LGBTQ support group recently ..."). The extraction stage's
facts of the same session (``ingest.jsonl`` of a run cache) are matched to them by
the cosine of their sentence embeddings (the project's embedder,
all-MiniLM-L6-v2 in ``memlora eval locomo``):

* **fact recall** -- the share of observations that some extracted fact matches
  (cosine >= :data:`MATCH_THRESHOLD`);
* **fact precision** -- the share of extracted facts that match some observation.

The threshold (0.8) was set by reading each conv-26 observation of sessions 1-3
beside its nearest fact extracted by the shipped expert (28 pairs): every pair
at 0.8 or above states the same fact in other words; between 0.6 and 0.8 the
pairs share words but not the information, or give the fact to the wrong speaker
(0.71 for one speaker's painting credited to the other). Observations are not
exhaustive (they skip small talk a fact may legitimately keep), so precision is a
lower bound; recall is the measure to raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from memlora_engine.data.locomo import Conversation
from memlora_engine.embeddings.base import Embedder, unit

__all__ = ["MATCH_THRESHOLD", "extraction_coverage"]

MATCH_THRESHOLD = 0.8
"""The cosine at or above which an extracted fact and an observation state the same fact."""


def _matches(facts: list[str], observations: list[str], embedder: Embedder, threshold: float) -> tuple[int, int]:
    """(observations matched by some fact, facts matching some observation)."""
    if not facts or not observations:
        return 0, 0
    f, o = [unit(v) for v in embedder.embed(facts)], [unit(v) for v in embedder.embed(observations)]
    sims = [[sum(a * b for a, b in zip(x, y)) for y in o] for x in f]
    matched_facts = sum(max(row) >= threshold for row in sims)
    matched_obs = sum(max(sims[i][j] for i in range(len(f))) >= threshold for j in range(len(o)))
    return matched_obs, matched_facts


def extraction_coverage(
    ingest_records: Iterable[dict[str, Any]],
    conversation: Conversation,
    embedder: Embedder,
    *,
    threshold: float = MATCH_THRESHOLD,
) -> dict[str, Any]:
    """Fact recall and precision per ingested session and over them all (micro-averaged).

    Args:
        ingest_records: the run cache's ``ingest.jsonl`` records (``session``, ``facts``).
        conversation: the conversation those records ingested (its observations).

    Returns:
        ``{"threshold", "sessions": {"1": {"observations", "facts", "matched_observations",
        "matched_facts", "recall", "precision"}}, "overall": {...}}``; sessions without an
        observation are left out (nothing to recall).
    """
    facts: dict[int, list[str]] = {}
    for record in ingest_records:
        if record.get("stage", "ingest") == "ingest":
            facts.setdefault(int(record["session"]), []).extend(str(f) for f in record.get("facts") or [])
    sessions: dict[str, dict[str, Any]] = {}
    totals = {"observations": 0, "facts": 0, "matched_observations": 0, "matched_facts": 0}
    for session in sorted(facts):
        observations = [o.text for o in conversation.observations if o.session == session]
        if not observations:
            continue
        extracted = list(dict.fromkeys(facts[session]))
        matched_obs, matched_facts = _matches(extracted, observations, embedder, threshold)
        row = {"observations": len(observations), "facts": len(extracted),
               "matched_observations": matched_obs, "matched_facts": matched_facts}
        for key, value in row.items():
            totals[key] += value
        sessions[str(session)] = {**row, **_rates(row)}
    return {"threshold": threshold, "sessions": sessions, "overall": {**totals, **_rates(totals)}}


def _rates(row: dict[str, int]) -> dict[str, float | None]:
    return {
        "recall": round(row["matched_observations"] / row["observations"], 4) if row["observations"] else None,
        "precision": round(row["matched_facts"] / row["facts"], 4) if row["facts"] else None,
    }
