"""llama.cpp's own speed on this CPU: one-token decode and a 260-token prefill, 1 thread.

Usage (after any run that loaded the default backbone, which writes the GGUF)::

    python results/backbone/one_token_eval.py ~/.cache/memlora/gguf/gemma-3-270m/gemma-3-270m-q4_k_m.gguf

Prints the CPU features llama.cpp was built with, the median of 30 one-token ``eval`` calls
(the decode ceiling, as ``llamacpp_speed_check.py`` measures it) and the seconds of one
260-token prefill (about a generation prompt).
"""

from __future__ import annotations

import statistics
import sys
import time

from llama_cpp import Llama, llama_print_system_info


def main() -> None:
    llm = Llama(model_path=sys.argv[1], n_threads=1, n_ctx=1024, verbose=False)
    print(llama_print_system_info().decode().strip())
    llm.reset()
    llm.eval([2, 106, 1645])
    times = []
    for i in range(30):
        start = time.perf_counter()
        llm.eval([107 + i % 5])
        times.append(time.perf_counter() - start)
    llm.reset()
    start = time.perf_counter()
    llm.eval(list(range(1000, 1260)))
    print(f"one-token eval median {statistics.median(times) * 1e3:.1f} ms; "
          f"260-token prefill {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
