"""Blend two experts of one operation and base model: the LoRA whose weight change is w * A's + (1 - w) * B's.

peft's ``add_weighted_adapter(..., combination_type="cat")`` stacks the two adapters'
ranks, so the blended change is exactly the weighted sum of the two changes (no
approximation of averaging the A and B factors separately); the result has rank
r_A + r_B and scaling 1, saved in float32 (llama.cpp's LoRA converter reads no bfloat16).
Used to trade the consolidating rich-recipe update candidate against the shipped expert
(results/update_bench/README.md, session 9) and, in session 12, to make the shipped
generation expert (results/answers/README.md, "Session 12").

Usage::

    python results/update_bench/scripts/blend.py A_DIR B_DIR --weight 0.5 --out OUT_DIR [--operation generation]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from memlora_engine.backbone import load_backbone
from memlora_engine.types import Operation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="first adapter dir (weight --weight)")
    parser.add_argument("b", help="second adapter dir (weight 1 - --weight; its base_model_name_or_path is kept)")
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--out", required=True)
    parser.add_argument("--operation", default="update", choices=[op.value for op in Operation])
    args = parser.parse_args()
    operation = Operation(args.operation)
    # peft's weighted merge needs the transformers runtime (llama.cpp is the default).
    backbone = load_backbone(adapters={operation.value: args.a}, num_threads=1, vocabulary="full",
                             runtime="transformers")
    model = backbone.model
    first = backbone.adapters[operation]
    model.load_adapter(args.b, adapter_name="other", is_trainable=False)
    model.add_weighted_adapter([first, "other"], [args.weight, 1.0 - args.weight], "blend",
                               combination_type="cat")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=["blend"])
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        config = json.loads((Path(tmp) / "blend" / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = json.loads((Path(args.b) / "adapter_config.json").read_text())[
            "base_model_name_or_path"]
        (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
        weights = load_file(Path(tmp) / "blend" / "adapter_model.safetensors")
        save_file({k: v.float().contiguous() for k, v in weights.items()}, out / "adapter_model.safetensors")
    print(f"wrote {out}: {args.weight} x {args.a} + {1 - args.weight:g} x {args.b}")


if __name__ == "__main__":
    main()
