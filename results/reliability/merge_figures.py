"""Merge summaries of ``tests/reliability/figures.py`` run side by side into one figure.

    PYTHONPATH=tests/reliability python results/reliability/merge_figures.py OUT.json A.json B.json ...

Keeps every finished run of every part once (by writer seed; the first part that
finished a seed wins), drops runs cut short (``in_progress``), and recomputes the
totals over what was kept. Each part's command, start, end and machine stay in
``parts``, so every run can be traced to the command that made it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _adversary import run_totals


def main(out: str, *parts: str) -> None:
    runs: dict[int, dict] = {}
    summary: dict = {"parts": []}
    for name in parts:
        part = json.loads(Path(name).read_text(encoding="utf-8"))
        kept = [r for r in part["runs"] if r["seed"] not in runs]
        runs.update({r["seed"]: {**r, "part": len(summary["parts"])} for r in kept})
        summary["parts"].append({key: part.get(key) for key in ("command", "started", "finished", "machine",
                                                                "load_average_start", "load_average_now")}
                                | {"seeds_kept": [r["seed"] for r in kept], "file": Path(name).name})
    summary["runs"] = [runs[seed] for seed in sorted(runs)]
    summary["totals"] = run_totals(summary["runs"])
    Path(out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary["totals"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
