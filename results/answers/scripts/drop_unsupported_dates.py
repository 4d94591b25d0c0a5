"""Drop temporal generation examples whose target date is not in the listed memories.

Usage: python drop_unsupported_dates.py DISTILL_DIR [--keep conv-30]

A category-2 (temporal) example whose target's numbers ("21 December 2022": 21, 2022) do
not all appear in the memories listed in its prompt teaches the generation expert to
invent a date: 75 of the 184 temporal examples of the six training conversations after
`memlora distill` with anchored dates (session 15). The files under DISTILL_DIR/generation/
are rewritten in place; conversations named with --keep (the validation one) are left as
they are. Prints the counts.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def supported(example: dict) -> bool:
    if example["context"].get("category") != 2:
        return True
    numbers = set(re.findall(r"\d+", example["target"]))
    memories = example["messages"][-1]["content"].split("Question:")[0]
    return numbers <= set(re.findall(r"\d+", memories))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("distill_dir", type=Path)
    parser.add_argument("--keep", default="conv-30")
    args = parser.parse_args()
    keep = set(args.keep.split(","))
    for path in sorted((args.distill_dir / "generation").glob("conv-*.jsonl")):
        if path.stem in keep:
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [r for r in rows if supported(r)]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
        print(f"{path.stem}: kept {len(kept)} of {len(rows)}")


if __name__ == "__main__":
    main()
