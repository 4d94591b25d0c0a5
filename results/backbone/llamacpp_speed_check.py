"""Per-token overhead of the llama.cpp runtime: this checkout against an earlier commit, interleaved.

Run from the repository root, niced:
    nice -n 5 python results/backbone/llamacpp_speed_check.py --baseline 70a443b --threads 1,2 --repeat 3 \
        --json results/backbone/llamacpp_speed_check.json

What it does:
* records the demo's requests once (the demo's three sessions and four questions through ``Memory``, default
  ``MemoryConfig``, as ``llamacpp_check.py`` does: 14 calls) on this checkout's backbone;
* loads ``LlamaCppBackbone`` as it was at ``--baseline`` (the module read with ``git show``) and this checkout's
  twice, with ``reuse_prefix=False`` ("numpy") and with its default ("numpy+prefix"), one llama.cpp model each,
  and replays the recorded requests in their order on all three, interleaved (baseline, numpy, numpy+prefix,
  next request), ``--repeat`` times per thread count: seconds per call (prompt encoding to the last token), and
  decode tok/s = (output tokens - 1) / (seconds from the first token to the last), so prefill is left out;
* checks that every variant gives the baseline's output token ids on every call (greedy: they must);
* llama.cpp's own one-token ``eval`` on the same model and threads (median ms), the decode ceiling.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llamacpp_check import _requests_from_demo  # noqa: E402

MODULE = "memlora_engine/backbone/llamacpp.py"


def _baseline_class(commit: str, scratch: Path) -> Any:
    """``LlamaCppBackbone`` as ``commit`` had it (its other imports resolve to this checkout)."""
    source = subprocess.run(["git", "show", f"{commit}:{MODULE}"], capture_output=True, text=True, check=True).stdout
    path = scratch / "llamacpp_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("llamacpp_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LlamaCppBackbone


def _load(threads: int, cls: Any = None, **options: Any) -> Any:
    from memlora_engine.backbone import load_backbone

    backbone = load_backbone("gemma-3-270m", runtime="llama.cpp", num_threads=threads)
    if cls is not None or options:  # the same arguments, another implementation or option
        other = (cls or type(backbone))(
            backbone.model_path, backbone.tokenizer, adapters=backbone.adapters, eos_token_ids=backbone._eos_ids,
            name=backbone.name, vocabulary=backbone.vocabulary, cache_dir=backbone._cache_dir, num_threads=threads,
            **options)
        backbone.close()
        return other
    return backbone


def _tokens(backbone: Any, request: Any) -> tuple[float, float, list[int]]:
    """Seconds of the call, seconds from its first token to its last, the tokens."""
    start = time.perf_counter()
    prompt = backbone.encode(request)
    tokens, first = [], start
    for token in backbone._tokens(request, prompt):
        if not tokens:
            first = time.perf_counter()
        tokens.append(token)
    end = time.perf_counter()
    return end - start, end - first, tokens


def _own_eval_ms(backbone: Any, repeat: int = 30) -> float:
    llm = backbone._llm
    llm.reset()
    llm.eval([2, 106, 1645])
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        llm.eval([107 + i % 5])
        times.append(time.perf_counter() - start)
    llm.reset()
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="commit whose llamacpp.py is the 'before'")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    results: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "cpu": next((line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), "?"),
        "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(), "baseline": args.baseline,
        "head": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        baseline_cls = _baseline_class(args.baseline, Path(scratch))
        requests = None
        for threads in (int(t) for t in args.threads.split(",")):
            variants = {"baseline": _load(threads, baseline_cls), "numpy": _load(threads, reuse_prefix=False),
                        "numpy+prefix": _load(threads)}
            if requests is None:
                requests = _requests_from_demo(variants["numpy"])
                print(f"{len(requests)} recorded calls", file=sys.stderr, flush=True)
            calls: list[dict[str, Any]] = []
            for repeat in range(args.repeat):
                for index, request in enumerate(requests):
                    row: dict[str, Any] = {"repeat": repeat, "index": index, "operation": request.operation.value}
                    for name, backbone in variants.items():
                        seconds, decode, tokens = _tokens(backbone, request)
                        row[name] = {"seconds": seconds, "output_tokens": len(tokens), "tokens": tokens,
                                     "decode_tok_s": (len(tokens) - 1) / decode if len(tokens) > 1 else None}
                    row["identical"] = all(row[n]["tokens"] == row["baseline"]["tokens"] for n in variants)
                    calls.append(row)
                    print(threads, repeat, index, row["operation"],
                          {n: round(row[n]["seconds"], 3) for n in variants}, row["identical"], file=sys.stderr, flush=True)
            summary: dict[str, Any] = {"identical_calls": sum(c["identical"] for c in calls), "calls": len(calls),
                                       "load_average_after": os.getloadavg(),
                                       "own_eval_ms": {n: _own_eval_ms(b) for n, b in variants.items()}}
            for op in sorted({c["operation"] for c in calls}) + ["all"]:
                rows = [c for c in calls if op in ("all", c["operation"])]
                summary[op] = {n: {"median_seconds": statistics.median(c[n]["seconds"] for c in rows),
                                   "median_decode_tok_s": statistics.median(
                                       c[n]["decode_tok_s"] for c in rows if c[n]["decode_tok_s"])}
                               for n in variants}
            results["runs"][f"{threads}_threads"] = {"summary": summary, "calls": calls}
            print(json.dumps(summary, indent=1), file=sys.stderr, flush=True)
            for backbone in variants.values():
                backbone.close()
            if args.json:  # after each thread count: a later one may be cut short on a busy machine
                args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
