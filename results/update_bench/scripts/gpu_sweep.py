"""Train update experts in parallel on a lent GPU (session 19); run there, from the repository root.

What it expects on the device machine (see results/update_bench/README.md, "Session 19", for the
calls that put it there: the working tree may carry 64 MiB per call, the GGUF is 253 MB):

* ``/tmp/parts/part-*``: the gemma-3-270m Q4_K_M GGUF in pieces, ``.gpu/gguf.json`` its name and sha256;
* ``.gpu/tok/``: tokenizer.json + tokenizer_config.json of this machine's converted model (the device's
  transformers 5.17 builds another tokenizer from the GGUF: 11 ids for "hello world", not 3);
* ``.gpu/data_*/update/*.jsonl.gz``: ``memlora distill`` output (conv-30/41/42 + synthetic-update);
* ``.gpu/specs.json`` (or ``$DRIVE_SPECS``): one entry per run (data, lr, bs, steps, every, keep, secs,
  seed, warmup, init).

It assembles and converts the GGUF with the project's own converter, trains each run in its own process
with ``train_adapter`` (float32 weights, bf16 autocast), copies the checkpoint at the ``keep`` steps, and
packs them as float16 (two per tar: at most 8 files of 16 MB come back) with the logs into ``$OUT``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPU = ROOT / ".gpu"
OUT = Path(os.environ.get("OUT", "/tmp/out"))
CACHE = Path(os.environ.get("MEMLORA_CACHE_DIR", "/tmp/mlcache"))
os.environ["MEMLORA_CACHE_DIR"] = str(CACHE)
sys.path.insert(0, str(ROOT))


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def assemble_and_convert() -> None:
    from memlora_engine.backbone.models import MODELS, BuiltinModel, convert_builtin

    target = CACHE / "models" / "gemma-3-270m"
    if (target / "memlora-source.json").is_file():
        return
    meta = json.loads((GPU / "gguf.json").read_text())
    path = Path("/tmp/gg") / meta["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for part in sorted(Path("/tmp/parts").glob("part-*")):
            handle.write(part.read_bytes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log("gguf", path.stat().st_size, digest == meta["sha256"])
    if digest != meta["sha256"]:
        raise SystemExit("gguf digest mismatch")
    entry = MODELS["gemma-3-270m"]
    convert_builtin(BuiltinModel(entry.name, entry.description, lambda _d: path, entry.package), target)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(GPU / "tok" / name, target / name)
    log("converted")


def snapshot_loop(run_dir: Path, name: str, keep: set[int], stop: threading.Event) -> None:
    seen = -1
    while not stop.is_set():
        state = run_dir / "checkpoint" / "state.json"
        try:
            step = json.loads(state.read_text())["step"]
            if step != seen and step in keep:
                dest = GPU / "snaps" / f"{name}_s{step}"
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(run_dir / "checkpoint" / "adapter", dest)
                seen = step
                log(name, "snapshot", step)
        except (OSError, ValueError, KeyError):
            pass
        stop.wait(0.5)


def worker(name: str) -> None:
    spec = json.loads((GPU / os.environ.get("DRIVE_SPECS", "specs.json")).read_text())[name]
    from memlora_engine.training.config import TrainConfig
    from memlora_engine.training.data import load_examples
    from memlora_engine.training.trainer import train_adapter

    data = GPU / spec["data"]
    train = load_examples(data, "update", spec["train"])
    val = load_examples(data, "update", ["conv-30"])
    config = TrainConfig(operation="update", rank=16, alpha=32, dropout=0.0, target_modules="all-linear",
                         learning_rate=spec["lr"], batch_size=spec["bs"], max_steps=spec["steps"],
                         warmup_steps=spec.get("warmup", 20), eval_every=spec["every"], patience=10_000,
                         val_examples=8, max_length=448, dtype="float32", autocast=True, seed=spec["seed"],
                         device=os.environ.get("DRIVE_DEVICE", "cuda"), init_adapter=spec.get("init"))
    run_dir = Path("/tmp/runs") / name
    stop = threading.Event()
    thread = threading.Thread(target=snapshot_loop, args=(run_dir, name, set(spec["keep"]), stop), daemon=True)
    thread.start()
    result = train_adapter(config, train, val, run_dir, progress=False, max_seconds=spec["secs"])
    time.sleep(1.5)
    stop.set()
    thread.join()
    # the last checkpoint, whatever its step (a time budget may have cut the run short)
    last = GPU / "snaps" / f"{name}_last"
    if last.exists():
        shutil.rmtree(last)
    if result.steps not in spec["keep"]:
        shutil.copytree(run_dir / "checkpoint" / "adapter", last)
    shutil.copy(run_dir / "log.jsonl", GPU / "snaps" / f"{name}.log.jsonl")
    log(name, "done", result.steps, result.stopped, result.seconds, result.train_examples)


def to_half(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(src / "adapter_model.safetensors"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in tensors.items()}, str(dst / "adapter_model.safetensors"))
    shutil.copy(src / "adapter_config.json", dst / "adapter_config.json")


def pack() -> None:
    snaps = GPU / "snaps"
    half = Path("/tmp/half")
    dirs = sorted(p for p in snaps.iterdir() if p.is_dir())
    for d in dirs:
        to_half(d, half / d.name)
    # two fp16 r16 adapters (2 x 7.6 MB) per tar: at most 8 files come back
    groups = [dirs[i : i + 2] for i in range(0, len(dirs), 2)]
    for n, group in enumerate(groups[:7]):
        with tarfile.open(OUT / f"adapters{n}.tar", "w") as tar:
            for d in group:
                tar.add(half / d.name, arcname=d.name)
    with tarfile.open(OUT / "logs.tar.gz", "w:gz") as tar:
        for f in snaps.glob("*.log.jsonl"):
            tar.add(f, arcname=f.name)
        for f in Path("/tmp").glob("w_*.txt"):
            tar.add(f, arcname=f.name)


def unpack_data() -> None:
    import gzip

    for gz in GPU.glob("data_*/update/*.jsonl.gz"):
        plain = gz.with_suffix("")
        if not plain.exists():
            plain.write_bytes(gzip.decompress(gz.read_bytes()))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        worker(sys.argv[2])
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (GPU / "snaps").mkdir(exist_ok=True)
    unpack_data()
    assemble_and_convert()
    names = sys.argv[1:] or list(json.loads((GPU / os.environ.get("DRIVE_SPECS", "specs.json")).read_text()))
    procs = []
    for name in names:
        handle = open(f"/tmp/w_{name}.txt", "w")
        procs.append((name, subprocess.Popen([sys.executable, __file__, "worker", name], stdout=handle,
                                             stderr=subprocess.STDOUT), handle))
    for name, proc, handle in procs:
        proc.wait()
        handle.close()
        log(name, "rc", proc.returncode)
        print(Path(f"/tmp/w_{name}.txt").read_text()[-1500:], flush=True)
    pack()
    log("packed", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
