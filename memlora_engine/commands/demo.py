"""``memlora demo``: three sessions with Alice, ingested on-device, then questions from memory.

Runs the default backbone (gemma-3-270m, offline from PyPI) through the real engine:
embedded persistent Chroma in a throwaway directory, the default sentence-transformers
embedder. Output goes to stdout; progress for slow steps goes to stderr.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memlora_engine.commands._options import add_runtime_argument, chosen_runtime
from memlora_engine.generator import SupportsAdapters

__all__ = ["QUESTIONS", "SESSIONS", "add_arguments", "run"]

# A short story written for the demo: a fact changes (Paris -> Lisbon; the cat dies,
# a dog arrives) so the update operation has something to UPDATE or DELETE. The user's
# messages carry her name, as an app that knows its user sends them: the extraction
# expert writes "Alice moved to ..." from named turns and "I moved to ..." or nothing
# from role-only ones (README, "How add reads a conversation").
SESSIONS: list[tuple[str, list[dict[str, str]]]] = [
    (
        "2026-03-02T09:15:00",
        [
            {"role": "user", "name": "Alice", "content": "Hi! I'm Alice. I live in Paris and I work as a nurse at a children's hospital."},
            {"role": "assistant", "content": "Nice to meet you, Alice! Nursing with children must be rewarding."},
            {"role": "user", "name": "Alice", "content": "It is. At home I have a cat called Miso, and I'm vegetarian."},
        ],
    ),
    (
        "2026-05-18T19:40:00",
        [
            {"role": "user", "name": "Alice", "content": "Big news: I moved from Paris to Lisbon last week for a new job."},
            {"role": "assistant", "content": "Congratulations! What is the new job?"},
            {"role": "user", "name": "Alice", "content": "I'm now a nurse at the Lisbon university hospital. I'm learning Portuguese."},
        ],
    ),
    (
        "2026-08-09T11:05:00",
        [
            {"role": "user", "name": "Alice", "content": "Sadly Miso died in July. I adopted a dog named Pico."},
            {"role": "assistant", "content": "I'm sorry about Miso. Welcome, Pico!"},
            {"role": "user", "name": "Alice", "content": "Thanks. Also, I'm not vegetarian anymore; I eat fish now."},
        ],
    ),
]

QUESTIONS = [
    "Where does Alice live?",
    "What is Alice's job?",
    "What is the name of Alice's pet?",
    "What does Alice eat?",
]

_USER = "alice"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``memlora demo``."""
    from memlora_engine.backbone.models import DEFAULT_MODEL, MODELS
    from memlora_engine.prompts import PROMPT_STYLES

    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"built-in model ({', '.join(MODELS)}), a model directory, a .gguf file or a hub id",
    )
    parser.add_argument("--data-dir", type=Path, help="keep the memory here (default: a throwaway temporary directory)")
    parser.add_argument(
        "--prompt-style", choices=PROMPT_STYLES,
        help="prompts for operations on the base model (default: mem0); operations on a shipped adapter always "
             "use the memlora prompts they were trained on",
    )
    parser.add_argument(
        "--no-adapters", action="store_true",
        help="run every operation on the base model (default: the shipped LoRA experts where the model has them)",
    )
    parser.add_argument(
        "--adapter", action="append", default=[], metavar="OPERATION=DIR",
        help="run OPERATION on the LoRA adapter in DIR instead of the shipped one (e.g. update=runs/update/best); "
             "repeat for several operations",
    )
    parser.add_argument("--no-constrained", action="store_true", help="decode JSON without the schema constraint")
    parser.add_argument("--cache-dir", type=Path, help="model conversion cache (default: $MEMLORA_CACHE_DIR or user cache)")
    add_runtime_argument(parser)


def _quiet_progress_bars() -> None:
    # The CLI prints its own progress; transformers' per-tensor bars would drown it.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Timer:
    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> _Timer:
        _progress(f"... {self.label}")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        _progress(f"    done in {time.perf_counter() - self.start:.1f} s")


class _Recorder(SupportsAdapters):
    """Wraps the backbone to keep the raw update output, so NONE decisions can be shown too."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.update_outputs: list[str] = []

    def has_adapter(self, operation: Any) -> bool:
        return bool(self.generator.has_adapter(operation))

    def generate(self, request: Any) -> Any:
        result = self.generator.generate(request)
        if request.operation.value == "update":
            self.update_outputs.append(result.text)
        return result


def _print_decisions(raw_outputs: list[str]) -> None:
    from memlora_engine.errors import ModelOutputError
    from memlora_engine.parsing import parse_update_ops

    if not raw_outputs:
        print("  update decisions: (no update call: nothing related in memory yet, so every fact is ADDed)")
        return
    print("  update decisions (as the model wrote them):")
    try:
        ops = parse_update_ops(raw_outputs[-1])
    except ModelOutputError:
        print(f"    (unparseable) {raw_outputs[-1][:200]!r}")
        return
    for op in ops:
        print(f"    {str(op.event):<6} id={op.id} {op.text}")


def _print_result(result: Any, update_outputs: list[str]) -> None:
    print("  extracted facts:")
    for fact in result.facts or ["(none)"]:
        print(f"    - {fact}")
    if result.facts:
        _print_decisions(update_outputs)
    print("  applied events:")
    for event in result.events:
        old = f"  (was: {event.old_memory})" if getattr(event, "old_memory", None) else ""
        print(f"    {event.event.value:<6} {event.text}{old}")
    if not result.events:
        print("    (none)")
    for failure in result.failures:
        print(f"  ! model output could not be parsed: {failure}")
    for rejected in result.rejected:
        print(f"  ! rejected op: {rejected}")


def _adapters(args: argparse.Namespace) -> dict[str, Any] | str | None:
    """The adapters to load: the shipped ones (or none), with ``--adapter OPERATION=DIR`` overrides."""
    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.types import Operation

    if not args.adapter:
        return None if args.no_adapters else "shipped"
    chosen: dict[str, Any] = {} if args.no_adapters else dict(shipped_adapters(args.model))
    for item in args.adapter:
        operation, sep, directory = item.partition("=")
        if not sep or operation not in {op.value for op in Operation} or not Path(directory).is_dir():
            raise SystemExit(f"memlora demo: --adapter wants OPERATION=DIR with an existing DIR, got {item!r}")
        chosen[operation] = directory
    return chosen


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.backbone import load_backbone
    from memlora_engine.operations import default_max_new_tokens
    from memlora_engine.types import Operation

    _quiet_progress_bars()

    style = args.prompt_style or "mem0"
    args.runtime = chosen_runtime(args)
    print("MemLoRA demo: on-device memory for an agent talking to Alice over three sessions.")
    with _Timer(f"loading {args.model} on {args.runtime} (the first run converts the GGUF from PyPI, ~1 min; later runs take seconds)"):
        backbone = load_backbone(
            args.model, _adapters(args), cache_dir=args.cache_dir, constrained=not args.no_constrained,
            runtime=args.runtime,
        )
    on_adapters = [op.value for op in Operation if backbone.has_adapter(op)]
    if on_adapters:
        print(
            f"Model {args.model} with the LoRA experts for {', '.join(on_adapters)} (memlora prompts; "
            "see results/training/README.md); other operations run the base model "
            f"with the {style!r} prompts."
        )
    else:
        print(
            f"Every operation runs the base model {args.model} with the {style!r} prompts (no adapters"
            + ("; --no-adapters)." if args.no_adapters else " ship for this model).")
        )
    print(f"JSON output: {'free' if args.no_constrained else 'constrained to the schema'}.\n")
    scratch = None if args.data_dir else tempfile.mkdtemp(prefix="memlora-demo-")
    data_dir = args.data_dir or Path(scratch or ".")
    try:
        config = MemoryConfig(
            data_dir=data_dir, prompt_style="memlora", base_prompt_style=style,
            # The small budgets keep the demo to a few minutes on 2 CPU cores.
            max_new_tokens=default_max_new_tokens(quick=True),
        )
        with _Timer("loading the embedder and the store"):
            recorder = _Recorder(backbone)
            memory = Memory(config, generator=recorder)
            memory.delete_all(user_id=_USER)  # a reused --data-dir starts clean
        for number, (timestamp, messages) in enumerate(SESSIONS, 1):
            print(f"=== Session {number} ({timestamp})")
            for message in messages:
                print(f"  {message['role']}: {message['content']}")
            recorder.update_outputs.clear()
            with _Timer(f"session {number}: extraction + update"):
                result = memory.add(messages, user_id=_USER, timestamp=timestamp)
            _print_result(result, recorder.update_outputs)
            print()
        print("=== Final memory")
        for record in memory.get_all(user_id=_USER):
            print(f"  - {record.text}")
        print("\n=== Questions")
        for question in QUESTIONS:
            with _Timer(f"answering {question!r}"):
                answer = memory.answer(question, user_id=_USER, timestamp=SESSIONS[-1][0])
            # A base model keeps talking after its answer; show the first line.
            first_line = answer.text.strip().splitlines()[0] if answer.text.strip() else "(empty)"
            print(f"  Q: {question}\n  A: {first_line}")
        print("\n=== Model calls")
        for op, numbers in memory.stats.as_dict().items():
            if numbers.get("calls"):
                print(
                    f"  {op:<10} calls={int(numbers['calls'])} tokens in/out={int(numbers['input_tokens'])}/"
                    f"{int(numbers['output_tokens'])} seconds={numbers['seconds']:.1f} "
                    f"parse failures={int(numbers['parse_failures'])}"
                )
        if args.data_dir:
            print(f"\nThe memory is kept in {data_dir}.")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0
