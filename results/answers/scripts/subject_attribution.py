"""Does a stored memory name the right person? Attribution of a ``memlora eval locomo`` memory against LoCoMo's observations.

Each memory of a cached run (:func:`~memlora_engine.evaluation.retrieval.cached_memory`)
whose leading name (:func:`memlora_engine.subjects.subject_of`) is one of the two
speakers is matched by content to LoCoMo's ``observation`` facts of the turns it came
from (its provenance): both sides are embedded with the speakers' names masked, and the
closest observation at cosine >= ``--threshold`` is its match. The memory is *right*
when it names the observation's person and *swapped* when it names the other speaker.
Model-free; prints the counts and a few swapped examples.

Usage::

    python results/answers/scripts/subject_attribution.py ../shared/data/locomo_dev.json CACHE/memlora/conv-26 [--out F]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory
from memlora_engine.subjects import mask_name, subject_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("cache_dir", help="<cache>/<config>/<sample_id> of a memlora eval locomo run")
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--out")
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    sample_id = Path(args.cache_dir).name
    conversation = {c.sample_id: c for c in load_locomo(args.data)}[sample_id]
    speakers = [conversation.speaker_a, conversation.speaker_b]
    target = cached_memory(args.cache_dir, embedder, search_lexical_weight=None)
    memories = target.memory.get_all(user_id=target.scope)
    observations = list(conversation.observations)
    observation_vectors = embedder.embed([mask_name(o.text, speakers) for o in observations])
    counts: Counter[str] = Counter()
    swapped: list[dict[str, str]] = []
    for memory in memories:
        subject = subject_of(memory.text)
        if subject not in speakers:
            counts["no speaker named first"] += 1
            continue
        turns = set(target.provenance.get(memory.id, []))
        candidates = [i for i, o in enumerate(observations) if turns & set(o.evidence)]
        if not candidates:
            counts["no observation on its turns"] += 1
            continue
        vector = embedder.embed([mask_name(memory.text, speakers)])[0]
        best = max(candidates, key=lambda i: cosine(vector, observation_vectors[i]))
        if cosine(vector, observation_vectors[best]) < args.threshold:
            counts["no observation close enough"] += 1
            continue
        named = subject_of(observations[best].text)  # "Painting is ... for Melanie": the speaker's
        person = named if named in speakers else observations[best].speaker
        if person == subject:
            counts["right person"] += 1
        else:
            counts["swapped"] += 1
            swapped.append({"memory": memory.text, "observation": observations[best].text})
    matched = counts["right person"] + counts["swapped"]
    print(f"{sample_id}: {len(memories)} memories; {dict(counts)}")
    print(f"swapped among matched: {counts['swapped']}/{matched} = {counts['swapped'] / max(1, matched):.3f}")
    for example in swapped[:8]:
        print(f"  {example['memory'][:90]!r}  <->  {example['observation'][:90]!r}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            # counts only: the examples quote LoCoMo, which stays out of the repository
            json.dump({"sample_id": sample_id, "threshold": args.threshold, "counts": dict(counts)}, f, indent=1)


if __name__ == "__main__":
    main()
