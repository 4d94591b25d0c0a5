"""CPU seconds of the backbone's calls with the prefix cache and the batched update step on and off, on the
real model (gemma-3-270m, shipped adapters, latin head, one torch thread), over conv-26 prompts.

Run from the repository root, niced, with one torch thread:
    OMP_NUM_THREADS=1 nice -n 19 python results/backbone/speed_check.py --repeat 3 --json out.json
(needs ../shared/data/locomo_dev.json). One "run" is what a few Memory.add / Memory.answer calls ask of the
model, in their order: extraction windows of session 1 (one date; --extraction, default 4), then the update step
of adds (--update-groups, default 2; 3 new facts each, one call per fact, over 6 old memories: LoCoMo observations
of conv-26), then answers (--generation, default 3; generation over 8 observation lines). Modes run interleaved on one loaded backbone, each run with an empty prefix cache;
every mode's outputs are compared with the first mode's. CPU seconds (time.process_time) are robust on a
shared machine; wall seconds are printed too."""
import argparse, json, statistics, sys, time
from pathlib import Path

from memlora_engine.backbone import load_backbone
from memlora_engine.backbone._prefix import PrefixCache
from memlora_engine.data.locomo import load_locomo
from memlora_engine.data.windows import session_windows, window_messages
from memlora_engine.generator import GenerationRequest
from memlora_engine.operations import operation_spec, default_max_new_tokens
from memlora_engine.prompts import render_prompt
from memlora_engine.types import Operation

parser = argparse.ArgumentParser()
parser.add_argument("--data", default="../shared/data/locomo_dev.json")
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--modes", default="plain,prefix+batch,prefix,batch")
parser.add_argument("--extraction", type=int, default=4, help="extraction windows per run")
parser.add_argument("--update-groups", type=int, default=2, help="adds whose per-fact update calls run")
parser.add_argument("--generation", type=int, default=3, help="questions per run")
parser.add_argument("--json", type=Path)
args = parser.parse_args()

budget = default_max_new_tokens()
conv = next(c for c in load_locomo(args.data) if c.sample_id == "conv-26")
session = conv.sessions[0]
date = session.date_time.date().isoformat()


def request(op, **values):
    spec = operation_spec(op)
    return GenerationRequest(op, render_prompt("memlora", op, **values), spec.json_schema, budget[op.value])


extraction = []
for turns in list(session_windows(session))[: args.extraction]:
    text = "\n".join(f"{m['name']}: {m['content']}" for m in window_messages(conv, turns))
    extraction.append(request(Operation.EXTRACTION, conversation=text, date=date))
obs = [o.text for o in conv.observations]
updates = []
for start in (0, 20, 40)[: args.update_groups]:
    old = json.dumps([{"id": str(i), "text": t} for i, t in enumerate(obs[start:start + 6])], ensure_ascii=False, indent=2)
    updates.append([request(Operation.UPDATE, old_memories=old, facts=json.dumps([f]), date=date)
                    for f in obs[start + 6:start + 9]])
memories = "\n".join(f"- {t}" for t in obs[:8])
generation = [request(Operation.GENERATION, memories=memories, question=q.question, date="2023-10-20")
              for q in [q for q in conv.qa if q.category != 5][: args.generation]]

backbone = load_backbone(num_threads=1)
modes = args.modes.split(",")


def timed(fn):
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def run(mode):
    backbone.prefix_cache = PrefixCache() if "prefix" in mode else None
    backbone.batch_generation = "batch" in mode
    result = {"mode": mode, "cpu": {}, "wall": {}, "texts": []}
    for name, groups in (("extraction", [[r] for r in extraction]), ("update", updates), ("generation", [[r] for r in generation])):
        if not groups:
            continue
        cpu = wall = 0.0
        for group in groups:
            outs, c, w = timed(lambda: backbone.generate_batch(group) if len(group) > 1 else [backbone.generate(group[0])])
            cpu += c; wall += w
            result["texts"] += [o.text for o in outs]
        result["cpu"][name] = cpu; result["wall"][name] = wall
    return result


backbone.generate(extraction[0])  # warm-up: tokenizer index, reduced head, first-call costs
runs = []
for r in range(args.repeat):
    for mode in modes:
        res = run(mode)
        runs.append(res)
        print(f"repeat {r + 1} {mode}: " + ", ".join(f"{k} {v:.1f}" for k, v in res["cpu"].items()) + " CPU s",
              file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps(runs, indent=1))
ref = runs[0]["texts"]
n = {"extraction": len(extraction), "update": sum(map(len, updates)), "generation": len(generation)}
print(f"conv-26 prompts: {n}; medians of {args.repeat} repeats; CPU seconds per call (wall in brackets)")
print("| mode | extraction | update (per fact) | generation | all calls | outputs identical to " + modes[0] + " |")
print("|---|---|---|---|---|---|")
for mode in modes:
    mine = [x for x in runs if x["mode"] == mode]
    cells = []
    for k in ("extraction", "update", "generation"):
        if not n[k]:
            cells.append("-")
            continue
        cells.append(f"{statistics.median(x['cpu'][k] for x in mine) / n[k]:.2f} "
                     f"({statistics.median(x['wall'][k] for x in mine) / n[k]:.2f})")
    total = statistics.median(sum(x["cpu"].values()) for x in mine)
    same = all(x["texts"] == ref for x in mine)
    print(f"| {mode} | " + " | ".join(cells) + f" | {total:.1f} | {same} |")
