"""``memlora bench``: what the on-device backbone costs on this machine.

Prints load times (cold GGUF conversion, warm cache), the machine's memory bandwidth,
prefill and decode speed per dtype and output vocabulary (full, latin) with the bytes
read per decoded token and their fraction of the bandwidth, the same GGUF through
llama.cpp when ``llama-cpp-python`` is installed, seconds per ingested turn and per
answer through ``Memory`` with the shipped adapters (median, p95), seconds and tokens
per pipeline operation for the MemLoRA and Mem0 prompts, adapter switch overhead with
real LoRA adapters attached, resident memory and sizes on disk. Timings are medians
of ``--repeat`` runs. Not a test: numbers depend on the machine and on whatever else
runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from memlora_engine.commands._options import add_runtime_argument, chosen_runtime

if TYPE_CHECKING:
    from memlora_engine.backbone.llamacpp import LlamaCppBackbone

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``memlora bench``."""
    from memlora_engine.backbone.models import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help="built-in model name, directory, .gguf file or hub id")
    parser.add_argument("--cache-dir", type=Path, help="model conversion cache (default: $MEMLORA_CACHE_DIR or user cache)")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to time (default: %(default)s)")
    parser.add_argument("--skip-cold", action="store_true", help="do not time a cold GGUF conversion into a scratch dir")
    parser.add_argument("--prompt-tokens", type=int, default=256, help="prompt length for prefill speed")
    parser.add_argument("--decode-tokens", type=int, default=16, help="tokens decoded for decode speed")
    parser.add_argument(
        "--parse-failures", action="store_true",
        help="instead: parse-failure rate of extraction/update outputs with and without constrained decoding",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per timing (the median is kept)")
    parser.add_argument("--skip-turns", action="store_true", help="do not time Memory.add / Memory.answer")
    add_runtime_argument(parser)  # llama.cpp: its own rows; the dtype/head rows are the transformers runtime's
    parser.add_argument("--threads", type=int, help="threads of the llama.cpp runtime (default: all usable cores)")


def _quiet_progress_bars() -> None:
    # The CLI prints its own progress; transformers' per-tensor bars would drown it.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Rows(list[tuple[str, str]]):
    """The result rows; each is also echoed to stderr as soon as it is measured."""

    def append(self, row: tuple[str, str]) -> None:
        _say(f"  {row[0]}: {row[1]}")
        super().append(row)


def _rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _machine() -> str:
    import torch

    from memlora_engine.backbone.loader import cpu_count

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return (
        f"{cpu}, {cpu_count()} cores available, {mem:.0f} GiB RAM, torch {torch.__version__} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}), {platform.system()} {platform.release()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )


def _median(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _speeds(model: Any, prompt_tokens: int, decode_tokens: int, repeat: int) -> tuple[float, float]:
    import torch

    ids = _random_ids(model, prompt_tokens)
    short = ids[:, :8]
    with torch.inference_mode():
        model(short)  # warm-up
        prefill = _median(lambda: model(ids, logits_to_keep=1), repeat)  # as generate() prefills
        decode = _median(
            lambda: model.generate(short, max_new_tokens=decode_tokens, min_new_tokens=decode_tokens, do_sample=False),
            repeat,
        )
        base = _median(lambda: model.generate(short, max_new_tokens=1, min_new_tokens=1, do_sample=False), repeat)
    return prompt_tokens / prefill, (decode_tokens - 1) / max(decode - base, 1e-9)


def _random_ids(model: Any, length: int) -> Any:
    import torch

    high = min(int(model.config.vocab_size), 20000)
    return torch.randint(high // 10, high, (1, length))


def _weight_bytes(model: Any) -> int:
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if p.data_ptr() not in seen:  # tied embeddings count once
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def _operation_rows(backbone: Any) -> list[tuple[str, str, float, int, int]]:
    from memlora_engine.commands.demo import SESSIONS
    from memlora_engine.generator import GenerationRequest
    from memlora_engine.messages import render_conversation
    from memlora_engine.operations import OPERATIONS
    from memlora_engine.prompts import render_prompt
    from memlora_engine.types import Operation

    conversation = render_conversation(SESSIONS[1][1])
    old = json.dumps([{"id": "0", "text": "Alice lives in Paris"}, {"id": "1", "text": "Alice is a nurse"}], indent=2)
    facts = json.dumps(["Alice moved to Lisbon", "Alice is learning Portuguese"])
    cases = [
        (Operation.EXTRACTION, {"conversation": conversation}),
        (Operation.UPDATE, {"old_memories": old, "facts": facts}),
        (Operation.GENERATION, {"memories": "- Alice lives in Lisbon\n- Alice is a nurse",
                                "question": "Where does Alice live?"}),
    ]
    rows = []
    for style in ("memlora", "mem0"):
        for op, values in cases:
            messages = render_prompt(style, op, date="2026-05-18", **values)
            spec = OPERATIONS[op]  # the demo's small budgets
            request = GenerationRequest(op, messages, spec.json_schema, spec.quick_max_new_tokens)
            start = time.perf_counter()
            result = backbone.generate(request)
            rows.append((style, op.value, time.perf_counter() - start, result.input_tokens, result.output_tokens))
            _say(f"    {style}/{op.value}: {rows[-1][2]:.1f} s")
    return rows


def _turn_rows(backbone: Any, rows: list[tuple[str, str]]) -> None:
    """Seconds per ingested turn and per answer through ``Memory`` on ``backbone`` (median, p95)."""
    from memlora_engine.commands._bench_compare import percentile, turn_and_answer_seconds

    _say("timing Memory.add per turn and Memory.answer per question (shipped adapters) ...")
    adds, answers = turn_and_answer_seconds(backbone, _say)
    rows.append((f"seconds per ingested turn (Memory.add, {len(adds)} turns)",
                 f"median {statistics.median(adds):.2f} s, p95 {percentile(adds, 0.95):.2f} s"))
    rows.append((f"seconds per answer (Memory.answer, {len(answers)} questions)",
                 f"median {statistics.median(answers):.2f} s, p95 {percentile(answers, 0.95):.2f} s"))


def _bandwidth_and_index_rows(backbone: Any, rows: list[tuple[str, str]]) -> float:
    """The machine's copy bandwidth (returned, GB/s) and the first use of ``backbone``'s tokenizer index, as rows."""
    from memlora_engine.commands._bench_compare import memory_bandwidth_gbs

    _say("measuring memory bandwidth (numpy copy) ...")
    bandwidth = memory_bandwidth_gbs()
    rows.append(("memory bandwidth (numpy copy of 256 MiB, read + write)", f"{bandwidth:.1f} GB/s"))
    _say("timing the constrained-decoding tokenizer index ...")
    start = time.perf_counter()
    kept = len(backbone._constraint.token_table().tokens)
    rows.append(("tokenizer index for constrained decoding (first use in this process)",
                 f"{time.perf_counter() - start:.2f} s ({kept} tokens; cached on disk after the first run)"))
    return bandwidth


def _llama_cpp_decode(backbone: Any, repeat: int) -> tuple[float, int]:
    """Our decode tok/s on the llama.cpp runtime: the MemLoRA update call (its adapter, JSON schema, vocabulary).

    (output tokens - 1) / (seconds of the call - seconds of the same call cut to one new token),
    medians of ``repeat`` runs, so the prefill is left out.
    """
    from dataclasses import replace

    from memlora_engine.generator import GenerationRequest
    from memlora_engine.operations import OPERATIONS
    from memlora_engine.prompts import render_prompt
    from memlora_engine.types import Operation

    old = json.dumps([{"id": "0", "text": "Alice lives in Paris"}, {"id": "1", "text": "Alice is a nurse"}], indent=2)
    facts = json.dumps(["Alice moved to Lisbon", "Alice is learning Portuguese"])
    messages = render_prompt("memlora", Operation.UPDATE, date="2026-05-18", old_memories=old, facts=facts)
    spec = OPERATIONS[Operation.UPDATE]
    request = GenerationRequest(Operation.UPDATE, messages, spec.json_schema, spec.max_new_tokens)
    tokens = backbone.generate(request).output_tokens  # warm-up
    full = _median(lambda: backbone.generate(request), repeat)
    first = _median(lambda: backbone.generate(replace(request, max_new_tokens=1)), repeat)
    return (tokens - 1) / max(full - first, 1e-9), tokens


def _run_llama_cpp(args: argparse.Namespace, rows: list[tuple[str, str]]) -> None:
    """``memlora bench --runtime llama.cpp``: load, decode against llama.cpp's own, turns, operations."""
    from memlora_engine.backbone import load_backbone
    from memlora_engine.backbone.models import MODELS
    from memlora_engine.commands._bench_compare import LLAMA_CPP_MISSING, llama_cpp_speeds

    _say("timing a warm load (llama.cpp) ...")
    start = time.perf_counter()
    backbone = cast("LlamaCppBackbone", load_backbone(args.model, cache_dir=args.cache_dir, runtime="llama.cpp",
                                                      num_threads=args.threads))
    rows.append((f"load, warm (llama.cpp, {backbone.model_path.name}, {backbone.num_threads} threads)",
                 f"{time.perf_counter() - start:.1f} s"))
    rows.append(("model size on disk (GGUF, as shipped)", f"{backbone.model_path.stat().st_size / 2**20:.0f} MiB"))
    rows.append(("resident memory (RSS) after load", f"{_rss_mib():.0f} MiB"))
    bandwidth = _bandwidth_and_index_rows(backbone, rows)
    switch = list(backbone.adapters)  # the operations with an expert loaded (the shipped ones)
    if switch:
        def switch_and_restore() -> None:
            for op in switch:
                with backbone.operation(op):
                    pass
        rows.append((f"adapter switch (activate + restore, shipped {'/'.join(op.value for op in switch)})",
                     f"{_median(switch_and_restore, max(args.repeat, 20)) / len(switch) * 1e6:.1f} us"))
    _say("timing our decode on llama.cpp (update call: adapter, JSON schema, vocabulary) ...")
    ours, tokens = _llama_cpp_decode(backbone, args.repeat)
    rows.append((f"decode, llama.cpp runtime ({backbone.vocabulary} vocabulary, constrained update call, "
                 f"{tokens} tokens)", f"{ours:.1f} tok/s"))
    # Every weight of the GGUF is read once per decoded token (the tied head included); the adapter's few MiB
    # are left out, so this is a lower bound.
    per_token = backbone.model_path.stat().st_size
    rows.append(("bytes read per decoded token (the GGUF's weights, read once; adapter left out)",
                 f"{per_token / 2**20:.0f} MiB -> {per_token * ours / 1e9:.1f} GB/s "
                 f"= {per_token * ours / 1e9 / bandwidth:.0%} of the copy bandwidth"))
    if args.model in MODELS:
        _say("timing llama.cpp's own prefill/decode on the same GGUF ...")
        ids = [int(i) for i in range(2000, 2000 + args.prompt_tokens)]
        speeds = llama_cpp_speeds(backbone.model_path, ids, args.decode_tokens, backbone.num_threads, args.repeat)
        if speeds is None:  # pragma: no cover - the runtime itself needs llama-cpp-python
            rows.append(("llama.cpp (same GGUF, threads, prompt; greedy)", LLAMA_CPP_MISSING))
        else:
            rows.append((f"llama.cpp prefill, {backbone.num_threads} threads ({args.prompt_tokens}-token prompt)",
                         f"{speeds[0]:.0f} tok/s"))
            rows.append(("llama.cpp decode (its own greedy sampler, batch 1)", f"{speeds[1]:.1f} tok/s"))
            rows.append(("our decode / llama.cpp decode", f"{ours / speeds[1]:.2f}"))
    if not args.skip_turns:
        _turn_rows(backbone, rows)
    _say("timing pipeline operations (llama.cpp, constrained JSON) ...")
    for style, op, seconds, tokens_in, tokens_out in _operation_rows(backbone):
        rows.append((f"{op} with {style} prompts", f"{seconds:.2f} s, {tokens_in} tokens in / {tokens_out} out"))
    rows.append(("resident memory (RSS) at the end", f"{_rss_mib():.0f} MiB"))
    backbone.close()


def _switch_overhead(backbone: Any, scratch: Path, repeat: int) -> tuple[float, float, float, float]:

    from memlora_engine.backbone.tiny import make_lora_adapter
    from memlora_engine.types import Operation

    # Made from the plain model first: after add_adapter the model is a PeftModel.
    paths = {op: make_lora_adapter(backbone.model, scratch / f"adapter-{op.value}", seed=i, rank=16)
             for i, op in enumerate(Operation)}
    sizes = [_dir_mib(path) for path in paths.values()]
    for op, path in paths.items():
        backbone.add_adapter(op, path)
    cycles = 200
    start = time.perf_counter()
    for i in range(cycles):
        with backbone.operation(list(Operation)[i % 4]):
            pass
    switch_us = (time.perf_counter() - start) / cycles * 1e6
    ids = _random_ids(backbone.model, 1)

    def forward(op: Operation) -> float:
        with backbone.operation(op) as model:
            model(ids)  # warm-up
            return _median(lambda: model(ids), max(repeat, 5))

    backbone._adapters.pop(Operation.VQA)  # measure the base path through disable_adapter()
    base_ms = forward(Operation.VQA) * 1e3
    lora_ms = forward(Operation.EXTRACTION) * 1e3
    return switch_us, base_ms, lora_ms, statistics.mean(sizes)


_PARSE_CONVERSATIONS = [
    "user: Hi, I'm Alice. I live in Paris and work as a nurse.",
    "user: I just adopted a dog named Rex. He is a two-year-old beagle.\nassistant: Congrats! Beagles are lovely.",
    "user: My sister Emma is getting married in June in Lyon.",
    "user: I'm allergic to peanuts, so please never suggest Thai satay.\nassistant: Noted, no peanuts.",
    "user: I started learning the piano last month. I practise every evening.",
    "user: We moved from Boston to Denver in March because of my wife's new job.",
    "user: My favourite book is Dune and I reread it every winter.",
    "user: I quit my job at the bank and I'm now a freelance web designer.",
    "user: Can you recommend a movie? I love sci-fi but I hate horror.\nassistant: Try Arrival.",
    "user: My son Leo turns seven on the 14th of May; he loves dinosaurs.",
    "user: I run 5 km every morning before work and I'm training for a half marathon in October.",
    "user: Hello! What's the weather like today?\nassistant: I can't check the weather, sorry.",
]
_PARSE_UPDATES = [
    (["Lives in Paris"], ["Moved to Berlin"]),
    (["Has a cat named Miso"], ["Miso the cat died", "Adopted a dog named Pico"]),
    (["Is vegetarian", "Works as a nurse"], ["Eats fish now"]),
    (["Likes cheese pizza"], ["Likes cheese pizza"]),
    (["Works at a bank"], ["Is a freelance web designer"]),
    (["Son Leo is six"], ["Son Leo turns seven on 14 May"]),
    (["Plays tennis"], ["Plays tennis on Sundays with Tom"]),
    ([], ["Is allergic to peanuts"]),
]


def _parse_failures(backbone: Any, style: str) -> int:
    from memlora_engine.errors import ModelOutputError
    from memlora_engine.generator import GenerationRequest
    from memlora_engine.operations import EXTRACTION_SCHEMA, OPERATIONS, UPDATE_SCHEMA
    from memlora_engine.parsing import parse_facts, parse_update_ops
    from memlora_engine.prompts import render_prompt
    from memlora_engine.types import Operation

    cases = [
        (GenerationRequest(Operation.EXTRACTION, render_prompt(style, Operation.EXTRACTION, conversation=c, date="2026-05-18"),
                           EXTRACTION_SCHEMA, OPERATIONS[Operation.EXTRACTION].quick_max_new_tokens), parse_facts)
        for c in _PARSE_CONVERSATIONS
    ] + [
        (GenerationRequest(Operation.UPDATE, render_prompt(
            style, Operation.UPDATE, date="2026-05-18", facts=json.dumps(new),
            old_memories=json.dumps([{"id": str(i), "text": t} for i, t in enumerate(old)], indent=2)),
            UPDATE_SCHEMA, OPERATIONS[Operation.UPDATE].quick_max_new_tokens), parse_update_ops)
        for old, new in _PARSE_UPDATES
    ]
    failures = {False: 0, True: 0}
    for number, (request, parse) in enumerate(cases, 1):
        for constrained in (False, True):
            backbone.constrained = constrained
            text = backbone.generate(request).text
            try:
                parse(text)
            except ModelOutputError:
                failures[constrained] += 1
            _say(f"  {number}/{len(cases)} {request.operation.value} constrained={constrained}: {text[:100]!r}")
    print(f"memlora bench --parse-failures --model {backbone.name} ({style} prompts)\n")
    print("| decoding | prompts | parse failures |\n|---|---|---|")
    for constrained in (False, True):
        print(f"| {'constrained' if constrained else 'free'} | {len(cases)} | {failures[constrained]} |")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print a Markdown table."""
    import torch

    from memlora_engine.backbone import cpu_count, load_backbone, resolve_dtype, resolve_model
    from memlora_engine.backbone.models import MODELS
    from memlora_engine.commands._bench_compare import LLAMA_CPP_MISSING, llama_cpp_speeds
    from memlora_engine.types import Operation

    _quiet_progress_bars()
    if args.parse_failures:
        # the base model on Mem0's prompts: no shipped adapters
        return _parse_failures(load_backbone(args.model, None, cache_dir=args.cache_dir), "mem0")
    rows = _Rows()
    rows.append(("machine", _machine()))
    args.runtime = chosen_runtime(args)
    if args.runtime == "llama.cpp":
        _run_llama_cpp(args, rows)
        _print_table(f"memlora bench --model {args.model} --runtime llama.cpp", rows)
        return 0
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    chosen = resolve_dtype("auto")
    with tempfile.TemporaryDirectory(prefix="memlora-bench-") as tmp:
        scratch = Path(tmp)
        if not args.skip_cold and args.model in MODELS:
            _say("timing a cold load (GGUF -> safetensors conversion into a scratch cache) ...")
            start = time.perf_counter()
            load_backbone(args.model, cache_dir=scratch / "cold", dtype=chosen, runtime="transformers")
            rows.append(("load, cold (GGUF from PyPI -> safetensors cache)", f"{time.perf_counter() - start:.1f} s"))
            import shutil

            shutil.rmtree(scratch / "cold", ignore_errors=True)
        _say("timing a warm load ...")
        resolve_model(args.model, args.cache_dir)  # make sure the cache exists before timing
        start = time.perf_counter()
        backbone = load_backbone(args.model, cache_dir=args.cache_dir, dtype=chosen, runtime="transformers")
        rows.append((f"load, warm (converted cache, {chosen})", f"{time.perf_counter() - start:.1f} s"))
        resolved = resolve_model(args.model, args.cache_dir)
        if Path(resolved.source).is_dir():
            rows.append(("model size on disk (converted cache)", f"{_dir_mib(Path(resolved.source)):.0f} MiB"))
        if args.model in MODELS:
            rows.append(("model size on disk (GGUF, as shipped)", f"{MODELS[args.model].gguf(scratch).stat().st_size / 2**20:.0f} MiB"))
        rows.append(("resident memory (RSS) after load", f"{_rss_mib():.0f} MiB"))
        info = backbone.describe()
        rows.append(("parameters", f"{info['parameters'] / 1e6:.0f} M"))
        bandwidth = _bandwidth_and_index_rows(backbone, rows)
        original_dtype, original_vocabulary = backbone.model.dtype, backbone.vocabulary
        decode_by_vocabulary: dict[str, float] = {}
        for dtype in dtypes:
            backbone.model.to(getattr(torch, dtype))
            for vocabulary in ("full", "latin"):
                _say(f"timing prefill/decode in {dtype}, {vocabulary} output head ...")
                backbone.vocabulary = vocabulary
                with backbone.operation(Operation.VQA) as model:  # no VQA adapter: the base model
                    prefill, decode = _speeds(model, args.prompt_tokens, args.decode_tokens, args.repeat)
                    head_rows = int(model.get_output_embeddings().weight.shape[0])
                weights = _weight_bytes(backbone.model)
                head = backbone.model.get_output_embeddings().weight
                per_token = weights - (head.shape[0] - head_rows) * head.shape[1] * head.element_size()
                label = f"{dtype}, {vocabulary} head ({head_rows} rows)"
                if dtype == chosen:
                    decode_by_vocabulary[vocabulary] = decode
                rows.append((f"prefill, {label} ({args.prompt_tokens}-token prompt)", f"{prefill:.0f} tok/s"))
                rows.append((f"decode, {label} (greedy, batch 1)", f"{decode:.1f} tok/s"))
                rows.append((
                    f"bytes read per decoded token, {label}",
                    f"{per_token / 2**20:.0f} MiB -> {per_token * decode / 1e9:.1f} GB/s "
                    f"= {per_token * decode / 1e9 / bandwidth:.0%} of the copy bandwidth",
                ))
        backbone.model.to(original_dtype)
        backbone.vocabulary = original_vocabulary
        if args.model in MODELS:
            _say("timing llama.cpp on the shipped GGUF ...")
            ids = _random_ids(backbone.model, args.prompt_tokens)[0].tolist()
            speeds = llama_cpp_speeds(MODELS[args.model].gguf(scratch), ids, args.decode_tokens, cpu_count(), args.repeat)
            if speeds is None:
                rows.append(("llama.cpp (same GGUF, threads, prompt; greedy)", LLAMA_CPP_MISSING))
            else:
                rows.append((f"llama.cpp prefill, {MODELS[args.model].package} GGUF, {cpu_count()} threads",
                             f"{speeds[0]:.0f} tok/s"))
                rows.append(("llama.cpp decode (greedy, batch 1)", f"{speeds[1]:.1f} tok/s"))
                ours = decode_by_vocabulary.get(original_vocabulary)
                if ours:
                    rows.append(("our decode / llama.cpp decode", f"{ours / speeds[1]:.2f}"))
        rows.append(("resident memory (RSS) after loading + timing", f"{_rss_mib():.0f} MiB"))
        if not args.skip_turns:
            _turn_rows(backbone, rows)
        _say(f"timing pipeline operations ({chosen}, constrained JSON) ...")
        for style, op, seconds, tokens_in, tokens_out in _operation_rows(backbone):
            rows.append((f"{op} with {style} prompts", f"{seconds:.1f} s, {tokens_in} tokens in / {tokens_out} out"))
        _say("timing adapter switches (4 random-init LoRA adapters, r=16 on q/v) ...")
        switch_us, base_ms, lora_ms, adapter_mib = _switch_overhead(backbone, scratch, args.repeat)
        rows.append(("adapter switch (activate + restore)", f"{switch_us:.0f} us"))
        rows.append(("1-token forward: base (adapters disabled) vs LoRA active", f"{base_ms:.1f} ms vs {lora_ms:.1f} ms"))
        rows.append(("adapter size on disk (r=16, q/v)", f"{adapter_mib:.1f} MiB each"))
        rows.append(("resident memory (RSS) at the end", f"{_rss_mib():.0f} MiB"))
    _print_table(f"memlora bench --model {args.model} --runtime transformers  (auto dtype: {chosen})", rows)
    return 0


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"{title}\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
