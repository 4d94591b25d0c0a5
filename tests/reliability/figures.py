"""Run issue #19's "Done when" figures and record every counter in a JSON summary.

    python tests/reliability/figures.py --runs 10 --rounds 200 --seeds 50 \\
        --json results/reliability/figures.json

* ``--runs`` x ``--rounds``: four writer processes + one forgetting process on a
  fresh data directory per run, each run's writers seeded differently (:func:`_adversary.run_adversary`), with per-run
  counters: corrupt stores, worker errors, lost, resurrected, duplicated, invisible
  to search, byte hits, forgotten memories still listed, store/history mismatches.
* ``--seeds``: byte scans after a forget + random reads/writes of other scopes
  (:func:`_adversary.forget_then_touch`), the hits of each seed.

The JSON is rewritten after every run and seed, so a run cut short keeps what it
did. Exit status 0 when every counter is 0. Run it with the project importable
(``PYTHONPATH=<repo>`` or an installed checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _adversary import FAILURES, forget_then_touch, run_adversary, run_totals


def _machine() -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    except OSError:
        model = ""
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="adversarial runs, each on a fresh store (default 10)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per run (default 200)")
    parser.add_argument("--first-run-seed", type=int, default=0,
                        help="seed of the first run's writers; run i uses this + i (default 0)")
    parser.add_argument("--seeds", type=int, default=50, help="byte-scan seeds (default 50)")
    parser.add_argument("--first-seed", type=int, default=0, help="first byte-scan seed (default 0)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the summary")
    parser.add_argument("--work-dir", type=Path, default=None, help="data directories (a temporary one by default)")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="memlora-figures-"))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "machine": _machine(),
        "load_average_start": _load(), "runs_asked": args.runs, "rounds_asked": args.rounds,
        "seeds_asked": args.seeds, "runs": [], "seeds": [], "totals": {},
    }

    def save() -> None:
        runs, seeds = summary["runs"], summary["seeds"]
        summary["totals"] = {
            **run_totals(runs), "seeds": len(seeds), "seed_byte_hits": sum(len(s["hits"]) for s in seeds),
            "seed_steps": sum(len(s["steps"]) for s in seeds),
        }
        summary["load_average_now"] = _load()
        summary["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        tmp.replace(args.json)

    def progress(counters: dict[str, Any]) -> None:
        summary["in_progress"] = {"run": len(summary["runs"]), **counters}
        print(f"  round {counters['rounds_done']}/{counters['rounds']} audited at {counters['seconds']} s; "
              + ", ".join(f"{k} {counters[k]}" for k in FAILURES if counters[k]), file=sys.stderr, flush=True)
        if counters["rounds_done"] % 5 == 0:
            save()

    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}: {args.rounds} rounds", file=sys.stderr, flush=True)
        counters = run_adversary(work / f"run{run}", args.rounds, progress, seed=args.first_run_seed + run)
        counters["load_average_end"] = _load()
        summary.pop("in_progress", None)
        summary["runs"].append({"run": run, **counters})
        save()
        print(f"run {run + 1}: " + ", ".join(f"{k} {counters[k]}" for k in FAILURES)
              + f"; {counters['memories']} memories, {counters['seconds']} s", file=sys.stderr, flush=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.monotonic()
        result = forget_then_touch(seed, work / f"seed{seed}")
        summary["seeds"].append({**result, "seconds": round(time.monotonic() - t0, 1)})
        save()
        print(f"seed {seed}: {len(result['hits'])} hits after {len(result['steps'])} steps", file=sys.stderr,
              flush=True)
    save()
    totals = summary["totals"]
    return int(any(totals[k] for k in FAILURES) or totals["seed_byte_hits"] > 0)


if __name__ == "__main__":
    sys.exit(main())
