"""The llama.cpp runtime against the transformers runtime on gemma-3-270m with the shipped experts.

Run from the repository root, niced, one thread for both runtimes:
    OMP_NUM_THREADS=1 nice -n 10 python results/backbone/llamacpp_check.py --json results/backbone/llamacpp_check.json
and, for the update benchmark's agreement, after the two `memlora eval update` runs of docs/backbone.md:
    python results/backbone/llamacpp_check.py --compare-update A.json B.json

What it measures:
* load seconds and RSS after load, and after the demo's calls (then its first 6 replayed), each runtime in a
  fresh child process;
* the calls: the demo's three sessions and four questions run through Memory (default MemoryConfig: budgets,
  per-fact update calls, constrained JSON) on the llama.cpp backbone, every GenerationRequest the engine makes
  recorded; then each recorded request replayed on both runtimes, interleaved (transformers, llama.cpp, next
  request), --repeat times: seconds per call, and decode tok/s = (output tokens - 1) / (seconds of the call -
  seconds of the same call cut to 1 new token);
* agreement: per call, identical raw text, and identical parsed output (facts / update ops / answer text);
* adapter switch: llama.cpp's switch + restore (llama_set_adapters_lora twice) and the extra cost of the first
  decode after a switch (llama.cpp re-plans its graph), against the transformers runtime's switch + restore.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from memlora_engine.errors import ModelOutputError
from memlora_engine.generator import SupportsAdapters
from memlora_engine.operations import operation_spec
from memlora_engine.types import Operation

RUNTIMES = ("transformers", "llama.cpp")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load(runtime: str) -> Any:
    from memlora_engine.backbone import load_backbone

    return load_backbone("gemma-3-270m", num_threads=1, runtime=runtime)


def _memory_child(runtime: str) -> None:
    """In a fresh process: load, RSS, the demo's calls (its first 6 replayed), RSS again; print JSON."""
    start = time.perf_counter()
    backbone = _load(runtime)
    loaded = time.perf_counter() - start
    after_load = _rss_mib()
    for request in _requests_from_demo(backbone)[:6]:
        backbone.generate(request)
    print(json.dumps({"load_s": loaded, "rss_after_load_mib": after_load, "rss_after_calls_mib": _rss_mib()}))


class _Recorder(SupportsAdapters):
    """Passes calls to the backbone and keeps every request the engine makes."""

    def __init__(self, backbone: Any) -> None:
        self.backbone = backbone
        self.requests: list[Any] = []

    def has_adapter(self, operation: Operation) -> bool:
        return bool(self.backbone.has_adapter(operation))

    def generate(self, request: Any) -> Any:
        self.requests.append(request)
        return self.backbone.generate(request)


def _requests_from_demo(backbone: Any) -> list[Any]:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.commands.demo import QUESTIONS, SESSIONS
    from memlora_engine.testing import DeterministicEmbedder

    recorder = _Recorder(backbone)
    memory = Memory(MemoryConfig(store="memory"), generator=recorder, embedder=DeterministicEmbedder())
    for timestamp, messages in SESSIONS:
        memory.add(messages, user_id="alice", timestamp=timestamp)
    for question in QUESTIONS:
        memory.answer(question, user_id="alice", timestamp=SESSIONS[-1][0])
    return recorder.requests


def _parsed(operation: Operation, text: str) -> Any:
    parse = operation_spec(operation).parse
    if parse is None:
        return text.strip()
    try:
        return repr(parse(text))
    except ModelOutputError:
        return None


def _timed(backbone: Any, request: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = backbone.generate(request)
    return time.perf_counter() - start, result


def _switch_us(backbone: Any, cycles: int = 200) -> float:
    ops = [Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION]
    start = time.perf_counter()
    for i in range(cycles):
        with backbone.operation(ops[i % 3]):
            pass
    return (time.perf_counter() - start) / cycles * 1e6


def _first_decode_after_switch_ms(llama: Any, repeat: int = 20) -> dict[str, float]:
    """One-token decode right after a switch vs with the adapter already applied (llama.cpp)."""
    llm = llama._llm
    plain, switched = [], []
    for i in range(repeat):
        op = (Operation.EXTRACTION, Operation.UPDATE)[i % 2]
        with llama.operation(op):
            llm.reset()
            llm.eval([2, 106])  # bos + one token
            start = time.perf_counter()
            llm.eval([107])
            plain.append(time.perf_counter() - start)
        with llama.operation(op):  # the previous scope restored "none": this switches again
            start = time.perf_counter()
            llm.eval([108])
            switched.append(time.perf_counter() - start)
    return {"steady_ms": statistics.median(plain) * 1e3, "after_switch_ms": statistics.median(switched) * 1e3}


def _machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    import llama_cpp
    import torch
    import transformers

    return {"cpu": model, "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "llama_cpp_python": llama_cpp.__version__, "threads_per_runtime": 1}


def compare_update(path_a: Path, path_b: Path) -> dict[str, Any]:
    """Per-case agreement of two `memlora eval update --out` files (first row of each)."""
    rows = []
    for path in (path_a, path_b):
        report = json.loads(path.read_text())
        row = next(iter(report["rows"].values()))
        rows.append((report.get("runtime", "transformers"), row))
    (name_a, a), (name_b, b) = rows
    cases_a = {case["id"]: case for case in a["rows"]}
    cases_b = {case["id"]: case for case in b["rows"]}
    common = sorted(cases_a.keys() & cases_b.keys())
    same_ops = sum(cases_a[c]["predicted"] == cases_b[c]["predicted"] for c in common)
    same_raw = sum(cases_a[c]["raw"] == cases_b[c]["raw"] for c in common)
    return {
        "a": {"file": str(path_a), "runtime": name_a, "exact_match": a["summary"]["exact_match"]},
        "b": {"file": str(path_b), "runtime": name_b, "exact_match": b["summary"]["exact_match"]},
        "cases": len(common), "identical_predicted_ops": same_ops, "identical_raw_output": same_raw,
        "differing_cases": [c for c in common if cases_a[c]["predicted"] != cases_b[c]["predicted"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="replays of the recorded calls per runtime")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--memory-child", choices=RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument("--compare-update", nargs=2, type=Path, metavar=("A.json", "B.json"))
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    if args.compare_update:
        result = compare_update(*args.compare_update)
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return

    results: dict[str, Any] = {"machine": _machine(), "memory": {}}
    for runtime in RUNTIMES:  # fresh processes: RSS of one runtime alone
        child = subprocess.run([sys.executable, __file__, "--memory-child", runtime], capture_output=True, text=True,
                               check=True)
        results["memory"][runtime] = json.loads(child.stdout.strip().splitlines()[-1])
        print(runtime, results["memory"][runtime], file=sys.stderr, flush=True)

    backbones = {runtime: _load(runtime) for runtime in RUNTIMES}
    requests = _requests_from_demo(backbones["llama.cpp"])
    print(f"{len(requests)} recorded calls", file=sys.stderr, flush=True)
    calls: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        for index, request in enumerate(requests):
            row: dict[str, Any] = {"repeat": repeat, "index": index, "operation": request.operation.value}
            for runtime in RUNTIMES:  # interleaved: one request on each runtime, then the next
                backbone = backbones[runtime]
                first_s, _ = _timed(backbone, _one_token(request))
                seconds, result = _timed(backbone, request)
                decode = (result.output_tokens - 1) / (seconds - first_s) if result.output_tokens > 1 else None
                row[runtime] = {"seconds": seconds, "first_token_s": first_s, "input_tokens": result.input_tokens,
                                "output_tokens": result.output_tokens, "decode_tok_s": decode, "text": result.text,
                                "parsed": _parsed(request.operation, result.text)}
            row["same_text"] = row["transformers"]["text"] == row["llama.cpp"]["text"]
            row["same_parsed"] = row["transformers"]["parsed"] == row["llama.cpp"]["parsed"]
            calls.append(row)
            print(index, row["operation"], {r: round(row[r]["seconds"], 2) for r in RUNTIMES},
                  "same" if row["same_parsed"] else "DIFFERENT", file=sys.stderr, flush=True)
    results["calls"] = calls
    results["per_operation"] = _summary(calls)
    results["adapter_switch"] = {
        "transformers_switch_and_restore_us": _switch_us(backbones["transformers"]),
        "llama_cpp_switch_and_restore_us": _switch_us(backbones["llama.cpp"]),
        "llama_cpp_one_token_decode": _first_decode_after_switch_ms(backbones["llama.cpp"]),
    }
    print(json.dumps({k: v for k, v in results.items() if k != "calls"}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


def _one_token(request: Any) -> Any:
    from dataclasses import replace

    return replace(request, max_new_tokens=1)


def _summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for op in sorted({c["operation"] for c in calls}) + ["all"]:
        rows = [c for c in calls if op in ("all", c["operation"])]
        entry: dict[str, Any] = {"calls": len(rows), "identical_parsed": sum(c["same_parsed"] for c in rows),
                                 "identical_text": sum(c["same_text"] for c in rows)}
        for runtime in RUNTIMES:
            decodes = [c[runtime]["decode_tok_s"] for c in rows if c[runtime]["decode_tok_s"]]
            entry[runtime] = {
                "median_seconds": statistics.median(c[runtime]["seconds"] for c in rows),
                "total_seconds": sum(c[runtime]["seconds"] for c in rows),
                "median_decode_tok_s": statistics.median(decodes) if decodes else None,
                "median_output_tokens": statistics.median(c[runtime]["output_tokens"] for c in rows),
            }
        summary[op] = entry
    return summary


if __name__ == "__main__":
    main()
