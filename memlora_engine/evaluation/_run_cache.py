"""The run directory's bookkeeping: the fingerprint check, atomic checkpoints, taking another run's ingestion.

A run directory holds ``run.json`` (the fingerprint: configuration, model, options) and one
folder per conversation with ``checkpoint.json``. A run resumes only under the same
fingerprint; ``--ingest-from`` copies another run's finished ingestion when the two
ingest alike (same model, options and extraction/update stages).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memlora_engine.config import read_side_settings
from memlora_engine.errors import ConfigError
from memlora_engine.evaluation.recording import read_jsonl, rewrite_jsonl
from memlora_engine.operations import INGEST_OPERATIONS

__all__ = ["adapter_digests", "check_fingerprint", "check_ingest_source", "reuse_ingestion", "write_checkpoint"]

_INGEST_STAGES = frozenset(op.value for op in INGEST_OPERATIONS)


def write_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint.json`` whole or not at all (a torn one would stop the resume)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(checkpoint, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def adapter_digests(adapters: Mapping[str, str | Path]) -> dict[str, str]:
    """Each stage's adapter as a digest of its weights and config, for the run fingerprint.

    The stage names alone say *that* a stage runs on an adapter, not *which*: two
    runs with other weights in one cache would otherwise resume each other's outputs.

    Raises:
        ConfigError: a directory without ``adapter_config.json``.
    """
    digests: dict[str, str] = {}
    for stage, directory in sorted(adapters.items()):
        files = sorted(p for p in Path(directory).glob("adapter_*") if p.is_file())
        if not any(p.name == "adapter_config.json" for p in files):
            raise ConfigError(f"{stage} adapter: no adapter_config.json in {directory}")
        sha = hashlib.sha256()
        for path in files:
            sha.update(path.name.encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(chunk)
        digests[stage] = sha.hexdigest()[:16]
    return digests


def _changed_keys(a: dict[str, Any], b: dict[str, Any]) -> str:
    return ", ".join(sorted(k for k in {*a, *b} if a.get(k) != b.get(k)))


def check_fingerprint(directory: Path, fingerprint: dict[str, Any]) -> None:
    path = directory / "run.json"
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != fingerprint:
            raise ConfigError(
                f"{directory} holds a run with other settings ({_changed_keys(saved, fingerprint)}); "
                "use another --out directory or delete that one"
            )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fingerprint, indent=1, sort_keys=True), encoding="utf-8")


_READ_SIDE_SETTINGS = read_side_settings()
"""MemoryConfig fields that only the reads (``answer``, ``search``) use: a run's ingestion is taken under any value."""


def _ingest_fingerprint(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The part of a run fingerprint that decides what ingestion builds."""
    config = fingerprint["config"]
    settings = fingerprint.get("memory") or {}
    return {
        **{k: v for k, v in fingerprint.items() if k not in ("config", "memory", "adapter_weights")},
        "memory": {k: v for k, v in settings.items() if k not in _READ_SIDE_SETTINGS},
        "full_context": config["full_context"],
        "ingest_adapters": sorted(set(config["adapters"]) & _INGEST_STAGES),
        "adapter_weights": {k: v for k, v in (fingerprint.get("adapter_weights") or {}).items() if k in _INGEST_STAGES},
        "ingest_prompts": {k: v for k, v in config["prompts"].items() if k in _INGEST_STAGES},
    }


def check_ingest_source(source: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse ``source`` as an ingestion to take unless it is a run that ingests as ``fingerprint`` does.

    Raises:
        ConfigError: ``source`` is no run, ingests differently, or is a full-context run.
    """
    saved_path = source / "run.json"
    if not saved_path.exists():
        raise ConfigError(f"--ingest-from: no run in {source}")
    mine, theirs = _ingest_fingerprint(fingerprint), _ingest_fingerprint(json.loads(saved_path.read_text("utf-8")))
    if mine != theirs:
        raise ConfigError(f"--ingest-from {source.name}: it ingests differently ({_changed_keys(mine, theirs)})")
    if mine["full_context"]:
        raise ConfigError("--ingest-from: a full-context run has no ingestion")


def reuse_ingestion(source: Path, target: Path, conversation_id: str) -> None:
    """Copy ``source``'s finished ingestion of one conversation into the fresh run ``target``.

    ``source`` has passed :func:`check_ingest_source`.

    Raises:
        ConfigError: ``source`` has not finished ingesting this conversation.
    """
    conv = source / conversation_id
    ckpt_path = conv / "checkpoint.json"
    ckpt = json.loads(ckpt_path.read_text("utf-8")) if ckpt_path.exists() else {}
    if not ckpt.get("ingest_complete"):
        raise ConfigError(f"--ingest-from {source.name}: its ingestion of {conversation_id} is not finished")
    dest = target / conversation_id
    dest.mkdir(parents=True, exist_ok=True)
    copied = {
        "sessions_done": ckpt["sessions_done"],
        "ingest_complete": True,
        "provenance": ckpt["provenance"],
        "stats": {op: values for op, values in ckpt["stats"].items() if op in _INGEST_STAGES},
        **({"images": ckpt["images"]} if "images" in ckpt else {}),
        "ingested_by": ckpt.get("ingested_by", source.name),
    }
    for name in ("memories.jsonl", "ingest.jsonl"):
        (dest / name).write_bytes((conv / name).read_bytes())
    rewrite_jsonl(dest / "calls.jsonl", [r for r in read_jsonl(conv / "calls.jsonl") if r.get("stage") == "ingest"])
    write_checkpoint(dest / "checkpoint.json", copied)
