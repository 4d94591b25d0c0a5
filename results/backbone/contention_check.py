"""Seconds per extraction call on the llama.cpp runtime with and without a competing process.

Run from the repository root: python results/backbone/contention_check.py
Loads the default backbone on 2 threads, times five 64-token extraction calls (median, max),
then again beside one normal-priority busy-loop process, then on 1 thread (llama_set_n_threads)
with and without it. Numbers in docs/backbone.md ("Threads on a busy machine").
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import llama_cpp

from memlora_engine.backbone import load_backbone
from memlora_engine.generator import GenerationRequest
from memlora_engine.operations import OPERATIONS
from memlora_engine.prompts import render_prompt
from memlora_engine.types import Operation

backbone = load_backbone(num_threads=2)
spec = OPERATIONS[Operation.EXTRACTION]
conversation = "Alice: I moved to Lisbon and adopted a dog named Pico.\nBob: Nice!"
requests = [
    GenerationRequest(Operation.EXTRACTION,
                      render_prompt("memlora", Operation.EXTRACTION, date=f"2026-03-0{day}", conversation=conversation),
                      spec.json_schema, 64)
    for day in range(1, 6)
]


def timed(label: str) -> None:
    seconds = []
    for request in requests:
        start = time.perf_counter()
        backbone.generate(request)
        seconds.append(time.perf_counter() - start)
    print(f"{label}: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s", flush=True)


def set_threads(n: int) -> None:
    llama_cpp.llama_set_n_threads(backbone._llm.ctx, n, n)


timed("2 threads, no hog")
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
try:
    timed("2 threads, one normal-priority hog")
    set_threads(1)
    timed("1 thread, one normal-priority hog")
finally:
    hog.kill()
timed("1 thread, no hog")
set_threads(2)
timed("2 threads, no hog again")
