"""What the extraction windows of a cached run gave, by kind of window (model-free; session 24).

Usage::

    python results/answers/scripts/short_window_facts.py ../shared/data/locomo_dev.json CACHE/memlora/conv-26 conv-26

Reads the run's extraction calls (``calls.jsonl``, the raw model outputs) and sorts each
window by its shape: two turns, or one turn read alone (``MemoryConfig.speaker_windows``),
and whether its leading turn speaks in the first person (:func:`memlora_engine.steps.speaks_of_self`).
Per kind it prints how many facts it gave, the share matching one of LoCoMo's observations of
the same session (cosine >= :data:`~memlora_engine.evaluation.extraction.MATCH_THRESHOLD`, the
report's fact measure), and the share whose leading name is not the window's first speaker. Then
the session-level fact recall / precision of all the raw facts, and of those left once the
turns read alone that say nothing in the first person are skipped (``short_windows="first_person"``).
The raw outputs are counted before ``speaker_subjects`` renames a fact, so the numbers differ a
little from the report's, which counts the facts ``add`` kept.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.extraction import MATCH_THRESHOLD
from memlora_engine.steps import speaks_of_self
from memlora_engine.subjects import subject_of


def _unit(vectors: list[list[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=float)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    observations = list(conversation.observations)
    observed = _unit(embedder.embed([o.text for o in observations]))
    sessions = np.array([o.session for o in observations])
    facts: list[tuple[int, str, str, str]] = []  # (session, kind, window's first speaker, fact)
    for line in (Path(run) / "calls.jsonl").read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        if call["operation"] != "extraction" or call.get("stage") != "ingest":
            continue
        turns = [t.split(":", 1) for t in call["messages"][-1]["content"].split("\n")]
        kind = ("two turns" if len(turns) > 1 else "one turn") + (
            ", first person" if speaks_of_self(turns[0][1]) else ", no first person")
        facts += [(call["session"], kind, turns[0][0], f) for f in json.loads(call["output"]).get("facts", [])]
    vectors = _unit(embedder.embed([f for *_, f in facts]))
    best = np.array([(vectors[i] @ observed[sessions == s].T).max(initial=-1.0) for i, (s, *_) in enumerate(facts)])

    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_, kind, speaker, fact), score in zip(facts, best):
        row = per_kind[kind]
        row[0] += 1
        row[1] += score >= MATCH_THRESHOLD
        row[2] += subject_of(fact) not in (None, speaker)
    print(f"{sample_id}: facts, share matching an observation, share naming another than the window's first speaker")
    for kind, (n, matched, other) in sorted(per_kind.items()):
        print(f"  {kind:28s} {n:4d}  {matched / n:.3f}  {other / n:.3f}")

    def coverage(keep: list[bool]) -> str:
        kept = [i for i, k in enumerate(keep) if k]
        found = set()
        for i in kept:
            session = facts[i][0]
            scores = vectors[i] @ observed.T
            found |= {j for j in np.flatnonzero(scores >= MATCH_THRESHOLD) if sessions[j] == session}
        return (f"fact recall {len(found) / len(observations):.3f}, precision "
                f"{sum(best[i] >= MATCH_THRESHOLD for i in kept) / len(kept):.3f} ({len(kept)} facts)")

    print("  all windows:", coverage([True] * len(facts)))
    print("  without the turns read alone in no first person:",
          coverage([kind != "one turn, no first person" for _, kind, *_ in facts]))


if __name__ == "__main__":
    main()
