"""What glibc's M_PERTURB (turned on by every persistent store, issue #19 item 3) costs a store-heavy workload.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 19 python results/reliability/perturb_cost.py \\
        --repeats 5 --json results/reliability/perturb_cost.json

Each repeat runs the same workload twice, in two fresh processes, in alternating
order: once as shipped (M_PERTURB on) and once with the hardening skipped. The
workload, no model: a persistent store, ``add_many`` of ``--memories`` texts in
batches of 250, 200 single ``add(infer=False)``, 300 searches (limit 10), 20
``get_all`` of the whole scope, one ``delete_all`` of a second scope. The embedder
is the hashing one (the store is measured, not an embedding model). Reported: the
median wall and CPU seconds (``<phase>_cpu``: all threads of the process; on a shared
machine the steadier figure) per phase, on and off, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PHASES = ("add_many", "add", "search", "get_all", "delete_all", "total")


def workload(perturb: bool, memories: int) -> dict[str, float]:
    """One run in this process (a fresh one): seconds per phase."""
    from memlora_engine.store import _chroma_disk

    if not perturb:
        _chroma_disk._hardened = False  # harden_heap() then never calls mallopt
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    rng = random.Random(0)
    words = "coffee tea hiking paris lisbon dog cat piano guitar sister allergy vegan chess jazz sushi".split()

    def text(i: int) -> str:
        return f"memory {i}: " + " ".join(rng.choice(words) for _ in range(8))

    times: dict[str, float] = {}
    clock: dict[str, float] = {}

    def tick(phase: str | None = None) -> None:  # wall and CPU (all threads) seconds since the last tick
        wall, cpu = time.perf_counter(), time.process_time()
        if phase is not None:
            times[phase] = wall - clock["wall"]
            times[phase + "_cpu"] = cpu - clock["cpu"]
        clock.update(wall=wall, cpu=cpu)

    with tempfile.TemporaryDirectory(prefix="memlora-perturb-") as tmp:
        start, start_cpu = time.perf_counter(), time.process_time()
        memory = Memory(MemoryConfig(data_dir=Path(tmp) / "data"), embedder=HashingEmbedder(384))
        assert _chroma_disk.heap_hardened() == perturb
        tick()
        for first in range(0, memories, 250):
            memory.add_many([text(i) for i in range(first, min(first + 250, memories))], user_id="bench")
        tick("add_many")
        for i in range(200):
            memory.add(text(memories + i), user_id="bench", infer=False)
        tick("add")
        for _ in range(300):
            memory.search(" ".join(rng.choice(words) for _ in range(3)), user_id="bench", limit=10)
        tick("search")
        for _ in range(20):
            memory.get_all(user_id="bench")
        tick("get_all")
        memory.add_many([text(i) for i in range(300)], user_id="other")
        tick()
        memory.delete_all(user_id="other")
        tick("delete_all")
        memory.close()
        times["total"] = time.perf_counter() - start
        times["total_cpu"] = time.process_time() - start_cpu
    times["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memories", type=int, default=3000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)  # a child's single run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(workload(args.one == "on", args.memories)))
        return 0
    samples: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for repeat in range(args.repeats):
        for mode in (("on", "off") if repeat % 2 == 0 else ("off", "on")):
            done = subprocess.run([sys.executable, __file__, "--one", mode, "--memories", str(args.memories)],
                                  capture_output=True, text=True, check=True)
            samples[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(mode, samples[mode][-1], file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]), "memories": args.memories, "repeats": args.repeats,
        "load_average_end": [round(x, 2) for x in os.getloadavg()], "samples": samples, "median_s": {},
    }
    for phase in (*PHASES, *(p + "_cpu" for p in PHASES), "peak_rss_mb"):
        on = statistics.median(s[phase] for s in samples["on"])
        off = statistics.median(s[phase] for s in samples["off"])
        report["median_s"][phase] = {"on": round(on, 3), "off": round(off, 3), "on_over_off": round(on / off, 3)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
