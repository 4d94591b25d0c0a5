"""Blend two update experts of one base model: the LoRA whose weight change is w * A's + (1 - w) * B's.

peft's ``add_weighted_adapter(..., combination_type="cat")`` stacks the two adapters'
ranks, so the blended change is exactly the weighted sum of the two changes (no
approximation of averaging the A and B factors separately); the result has rank
r_A + r_B and scaling 1. Used to trade the consolidating rich-recipe candidate
against the shipped expert (results/update_bench/README.md, session 9).

Usage::

    python results/update_bench/scripts/blend.py A_DIR B_DIR --weight 0.5 --out OUT_DIR
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from memlora_engine.backbone import load_backbone
from memlora_engine.types import Operation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="first adapter dir (weight --weight)")
    parser.add_argument("b", help="second adapter dir (weight 1 - --weight)")
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    backbone = load_backbone(adapters={"update": args.a}, num_threads=1, vocabulary="full")
    model = backbone.model
    first = backbone.adapters[Operation.UPDATE]
    model.load_adapter(args.b, adapter_name="other", is_trainable=False)
    model.add_weighted_adapter([first, "other"], [args.weight, 1.0 - args.weight], "blend",
                               combination_type="cat")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=["blend"])
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(Path(tmp) / "blend" / name, out / name)
    print(f"wrote {out}: {args.weight} x {args.a} + {1 - args.weight:g} x {args.b}")


if __name__ == "__main__":
    main()
