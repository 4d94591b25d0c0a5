"""Keep only the changed values that have an ADD twin, and their twins (session 18).

Usage::

    python results/update_bench/scripts/twin_pairs.py DATA OUT

Reads ``DATA/update/synthetic-update.jsonl`` (``memlora distill ... --synthetic-twins``) and
writes ``OUT/update/synthetic-update.jsonl`` with, for every twin, the example it twins
(its ``context["twin_of"]``: the same fact, an UPDATE over a listing holding the changed memory) and the
twin itself (ADD over the listing without it): as many UPDATEs as ADDs, and nothing else, so
that training on it moves no prior and the only thing to learn is whether the attribute's
memory is listed. ``OUT/manifest.json`` and the validation conversation's file are copied;
the training conversations' files are left out (train with ``--train-conversations`` naming a
conversation whose update file is empty: the script writes ``OUT/update/<id>.jsonl`` empty
for the ids given with ``--empty``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--validation", default="conv-30")
    parser.add_argument("--empty", default="conv-41", help="comma-separated conversation ids given empty files")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    examples = [json.loads(line) for line in (data / "update" / "synthetic-update.jsonl").read_text().splitlines()]
    by_id = {e["id"]: e for e in examples}
    kept = [e for twin in examples if twin["context"].get("twin") for e in (by_id[twin["context"]["twin_of"]], twin)]
    (out / "update").mkdir(parents=True, exist_ok=True)
    (out / "update" / "synthetic-update.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))
    for name in args.empty.split(","):
        (out / "update" / f"{name}.jsonl").write_text("")
    shutil.copy(data / "update" / f"{args.validation}.jsonl", out / "update" / f"{args.validation}.jsonl")
    shutil.copy(data / "manifest.json", out / "manifest.json")
    print(f"{len(kept)} examples ({len(kept) // 2} pairs) -> {out / 'update' / 'synthetic-update.jsonl'}")


if __name__ == "__main__":
    main()
