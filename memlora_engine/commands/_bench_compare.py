"""``memlora bench`` measures that put the backbone's numbers in context.

* the machine's memory bandwidth (a STREAM-like numpy copy): decoding a small model is
  bound by it, so "decode GB/s / copy GB/s" says how far from the ceiling we are;
* the same GGUF, prompt and greedy decode through llama.cpp (``llama-cpp-python``, the
  ``bench`` extra) on the same threads: the runtime a user would reach for instead;
* seconds per ingested turn (``Memory.add``) and per answer (``Memory.answer``) on a
  fixed multi-session conversation with the shipped adapters: what a user waits.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["llama_cpp_speeds", "memory_bandwidth_gbs", "percentile", "turn_and_answer_seconds"]

LLAMA_CPP_MISSING = 'skipped: llama-cpp-python is not installed (pip install "memlora[bench]"; it compiles, ~7 min on 2 cores)'


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank; p95 = ``fraction=0.95``)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def memory_bandwidth_gbs(mib: int = 256, repeat: int = 5) -> float:
    """Median GB/s of a numpy copy of ``mib`` MiB (bytes read + bytes written, as STREAM counts)."""
    import numpy as np

    source = np.ones(mib * 2**20 // 8, dtype=np.float64)
    target = np.empty_like(source)
    np.copyto(target, source)  # fault the pages in
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return 2 * source.nbytes / statistics.median(times) / 1e9


def llama_cpp_speeds(gguf: Path, prompt_ids: list[int], decode_tokens: int, threads: int, repeat: int) -> tuple[float, float] | None:
    """Prefill and decode tok/s of llama.cpp on ``gguf`` (medians), or None without llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError:
        return None
    llm = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=max(512, len(prompt_ids) + decode_tokens + 8), n_batch=512,
        n_threads=threads, n_threads_batch=threads, verbose=False,
    )
    prefills, decodes = [], []
    for _ in range(repeat):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt_ids)
        prefills.append(len(prompt_ids) / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(decode_tokens):
            token = llm.sample(top_k=1, temp=0.0)  # greedy
            llm.eval([token])
        decodes.append(decode_tokens / (time.perf_counter() - start))
    llm.close()
    return statistics.median(prefills), statistics.median(decodes)


def _turns() -> list[tuple[str, list[dict[str, str]]]]:
    """The demo's three sessions cut into turns: a user message with the reply that follows."""
    from memlora_engine.commands.demo import SESSIONS

    turns = []
    for timestamp, messages in SESSIONS:
        current: list[dict[str, str]] = []
        for message in messages:
            if message["role"] == "user" and current:
                turns.append((timestamp, current))
                current = []
            current.append(message)
        if current:
            turns.append((timestamp, current))
    return turns


def turn_and_answer_seconds(generator: Any, say: Any) -> tuple[list[float], list[float]]:
    """Seconds of each ``Memory.add`` (one turn) and each ``Memory.answer`` (the demo's questions).

    A fresh persistent store in a scratch directory, the default embedder, the engine's
    default token budgets, and ``generator`` (the loaded backbone with its adapters).
    """
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.commands.demo import QUESTIONS

    turns = _turns()
    with tempfile.TemporaryDirectory(prefix="memlora-bench-memory-") as scratch:
        memory = Memory(MemoryConfig(data_dir=Path(scratch), prompt_style="memlora"), generator=generator)
        memory.add("warm-up: the embedder and the store load here", user_id="warmup", infer=False)
        adds = []
        for number, (timestamp, messages) in enumerate(turns, 1):
            start = time.perf_counter()
            memory.add(messages, user_id="alice", timestamp=timestamp)
            adds.append(time.perf_counter() - start)
            say(f"    turn {number}/{len(turns)}: {adds[-1]:.2f} s")
        answers = []
        for question in QUESTIONS:
            start = time.perf_counter()
            memory.answer(question, user_id="alice", timestamp=turns[-1][0])
            answers.append(time.perf_counter() - start)
            say(f"    answer {question!r}: {answers[-1]:.2f} s")
        memory.close()
    return adds, answers
