"""Greedy outputs and time of the full vs the latin output head on real prompts (conv-26 extraction windows, generation questions).

Run from the repository root: python results/backbone/head_check.py (needs ../shared/data/locomo_dev.json)."""
import json, time, sys
from memlora_engine.backbone import load_backbone
from memlora_engine.generator import GenerationRequest
from memlora_engine.prompts import render_prompt
from memlora_engine.operations import operation_spec
from memlora_engine.types import Operation
from memlora_engine.data.locomo import load_locomo
convs = load_locomo('../shared/data/locomo_dev.json')
conv = [c for c in convs if c.sample_id == 'conv-26'][0]
sess = conv.sessions[0]
reqs = []
for i in range(0, 12, 2):
    turns = sess.turns[i:i+2]
    text = "\n".join(f"{t.speaker}: {t.text}" for t in turns)
    msgs = render_prompt("memlora", Operation.EXTRACTION, conversation=text, date="2023-05-08")
    reqs.append(GenerationRequest(operation=Operation.EXTRACTION, messages=msgs, max_new_tokens=96, json_schema=operation_spec(Operation.EXTRACTION).json_schema))
for q in conv.qa[:6]:
    msgs = render_prompt("memlora", Operation.GENERATION, memories="- Caroline went to a LGBTQ support group on 7 May 2023.\n- Melanie painted a sunrise in 2022.", question=q.question, date="2023-10-20")
    reqs.append(GenerationRequest(operation=Operation.GENERATION, messages=msgs, max_new_tokens=32))
out = {}
for vocab in ("full", "latin"):
    b = load_backbone(vocabulary=vocab, num_threads=1)
    b.generate(reqs[0])
    t0 = time.perf_counter(); texts = []; toks = 0
    for r in reqs:
        g = b.generate(r); texts.append(g.text); toks += g.output_tokens
    dt = time.perf_counter() - t0
    out[vocab] = texts
    print(vocab, f"{dt:.1f}s for {len(reqs)} calls, {toks} output tokens, {toks/dt:.1f} tok/s (incl. prefill)", flush=True)
    del b
same = sum(a == b for a, b in zip(out["full"], out["latin"]))
print("identical outputs:", same, "/", len(reqs))
for a, b in zip(out["full"], out["latin"]):
    if a != b: print("DIFF\n ", a[:200], "\n ", b[:200])
