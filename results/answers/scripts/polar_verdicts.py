"""Yes/no verdicts of the shipped generation expert: raw, and calibrated by the same prompt without memories.

Usage::

    python results/answers/scripts/polar_verdicts.py ../shared/data/locomo_dev.json

Session 30's probe. Every category 1-4 yes/no question of the dev file (``answering.is_polar_question``)
whose reference opens with a verdict ("Yes", "Likely no", ...) is put to the generation expert in the
engine's prompt (``prompts.render_prompt``) with the conversation's 10 LoCoMo observations
nearest the question (all-MiniLM-L6-v2 cosine) as the memories. The first answer token's probability mass
on "Yes"/"yes" and on "No"/"no"/"Not"/"not" gives the raw verdict; the calibrated one (contextual
calibration, Zhao et al. 2021) divides each mass by its value for the same prompt with "(no memories)".
One line per question (verdicts and masses, no answer text) and the share right for each. Runs the model
(llama.cpp, the default runtime, 1 thread; two prefills per question).
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np

from memlora_engine.answering import is_polar_question
from memlora_engine.backbone import load_backbone
from memlora_engine.backbone.llamacpp import LlamaCppBackbone
from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.generator import GenerationRequest
from memlora_engine.prompts import render_prompt
from memlora_engine.types import Operation


def verdict(reference: object) -> str | None:
    answer = str(reference).lower().strip()
    if re.match(r"(likely |probably )?yes\b", answer):
        return "Yes"
    if re.match(r"(likely |probably )?no\b", answer):
        return "No"
    return None


def main() -> None:
    import llama_cpp

    backbone = load_backbone(num_threads=1, runtime="llama.cpp")
    assert isinstance(backbone, LlamaCppBackbone)  # the logits are read from its llama.cpp context
    tokenizer = backbone.tokenizer
    first = lambda words: sorted({tokenizer.encode(w, add_special_tokens=False)[0] for w in words})  # noqa: E731
    yes, no = first(["Yes", "yes"]), first(["No", "no", "Not", "not"])

    def masses(memories: str, question: str) -> tuple[float, float]:
        messages = render_prompt("memlora", Operation.GENERATION, memories=memories, question=question,
                                 date="2023-12-01")
        prompt = backbone.encode(GenerationRequest(operation=Operation.GENERATION, messages=messages, max_new_tokens=1))
        with backbone.operation(Operation.GENERATION) as llm:
            llm.reset()
            llm.eval(prompt)
            logits = np.array(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)),
                              dtype=np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return float(p[yes].sum()), float(p[no].sum())

    embedder = SentenceTransformerEmbedder()
    right = {"raw": 0, "calibrated": 0}
    total = 0
    for conversation in json.loads(open(sys.argv[1], encoding="utf-8").read()):
        questions = [q for q in conversation["qa"] if q.get("category") != 5 and is_polar_question(q["question"])
                     and verdict(q.get("answer"))]
        if not questions:
            continue
        texts = [fact[0] if isinstance(fact, list) else fact for session in conversation["observation"].values()
                 for facts in session.values() for fact in facts]
        vectors = embedder.embed(texts)
        for q in questions:
            question_vector = embedder.embed([q["question"]])[0]
            nearest = sorted(range(len(texts)), key=lambda i: -cosine(question_vector, vectors[i]))[:10]
            py, pn = masses("\n".join(f"- {texts[i]}" for i in nearest), q["question"])
            cy, cn = masses("(no memories)", q["question"])
            raw = "Yes" if py > pn else "No"
            calibrated = "Yes" if py / max(cy, 1e-12) > pn / max(cn, 1e-12) else "No"
            expected = verdict(q["answer"])
            right["raw"] += raw == expected
            right["calibrated"] += calibrated == expected
            total += 1
            print(f"{conversation['sample_id']} q{conversation['qa'].index(q)}: reference {expected}, raw {raw}, "
                  f"calibrated {calibrated} (yes {py:.2f} no {pn:.2f}; without memories yes {cy:.2f} no {cn:.2f})")
    print(f"right: raw {right['raw']} / {total}, calibrated {right['calibrated']} / {total}")


if __name__ == "__main__":
    main()
