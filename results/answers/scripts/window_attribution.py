"""Whom do a run's extracted facts name? Per extraction window, raw model outputs and stored facts.

Usage::

    python results/answers/scripts/window_attribution.py ../shared/data/locomo_dev.json CACHE/memlora/conv-26

For each fact whose leading name is a speaker (:func:`memlora_engine.subjects.subject_of`):
whether it names the first or the second speaker of its ``add`` call (raw outputs of
``calls.jsonl``, before ``speaker_subjects``), and whether it names the person of the
closest LoCoMo observation of the call's turns (names masked, cosine >= 0.6), for the raw
outputs and for the facts stored (``ingest.jsonl``). Model-free; prints counts only (the
facts quote LoCoMo, which stays out of the repository).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.subjects import mask_name, subject_of


def main() -> None:
    data, run = sys.argv[1], Path(sys.argv[2])
    conversation = {c.sample_id: c for c in load_locomo(data)}[run.name]
    speakers = [conversation.speaker_a, conversation.speaker_b]
    speaker_of = {t.dia_id: t.speaker for s in conversation.sessions for t in s.turns}
    embedder = SentenceTransformerEmbedder()
    observations = list(conversation.observations)
    vectors = embedder.embed([mask_name(o.text, speakers) for o in observations])

    def attribution(windows: list[tuple[list[str], list[str]]]) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for turns, facts in windows:
            candidates = [i for i, o in enumerate(observations) if set(turns) & set(o.evidence)]
            for fact in facts:
                subject = subject_of(fact)
                if subject not in speakers:
                    counts["no speaker named first"] += 1
                    continue
                if not candidates:
                    counts["no observation on its turns"] += 1
                    continue
                vector = embedder.embed([mask_name(fact, speakers)])[0]
                best = max(candidates, key=lambda i: cosine(vector, vectors[i]))
                if cosine(vector, vectors[best]) < 0.6:
                    counts["no observation close enough"] += 1
                    continue
                named = subject_of(observations[best].text)
                person = named if named in speakers else observations[best].speaker
                counts["right person" if person == subject else "swapped"] += 1
        return dict(counts)

    raw: list[tuple[list[str], list[str]]] = []
    for line in (run / "calls.jsonl").open(encoding="utf-8"):
        call = json.loads(line)
        if call.get("operation") == "extraction" and call.get("stage") == "ingest":
            try:
                raw.append((call["dia_ids"], json.loads(call["output"])["facts"]))
            except (ValueError, KeyError, TypeError):
                pass  # a garbled output: counted by the run itself
    stored = [(r["dia_ids"], r["facts"]) for r in map(json.loads, (run / "ingest.jsonl").open(encoding="utf-8"))]
    position: Counter[str] = Counter()
    for turns, facts in raw:
        for fact in facts:
            subject = subject_of(fact)
            position["first speaker" if subject == speaker_of[turns[0]] else
                     "second speaker" if len(turns) > 1 and subject == speaker_of[turns[1]] else "other"] += 1
    print("raw outputs name the call's:", dict(position))
    print("raw outputs:", attribution(raw))
    print("stored facts:", attribution(stored))


if __name__ == "__main__":
    main()
