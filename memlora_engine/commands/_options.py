"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import argparse
from typing import Any

from memlora_engine.backbone.loader import RUNTIMES, resolve_runtime
from memlora_engine.config import ANSWER_SUPERSEDED, SHORT_WINDOWS, UNCHANGED_UPDATES, UPDATE_CONTEXTS

__all__ = ["add_memory_switches", "add_runtime_argument", "chosen_runtime", "memory_switches", "number_or_off",
           "threshold"]


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime``: what runs the model (``load_backbone(..., runtime=...)``)."""
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="what runs the model (default: auto = llama.cpp for a GGUF model when llama-cpp-python "
                             "is installed and no transformers-only option is set, else transformers; llama.cpp runs "
                             "the GGUF file with the adapters converted to GGUF LoRA, pip install \"memlora[llamacpp]\")")


_MEMORY_SWITCHES = {
    "dated_memories": "list memories with their session date, newest first, or not "
                      "(MemoryConfig.dated_memories; default: MemoryConfig's)",
    "anchor_dates": "rewrite extracted facts' relative dates against the session date, or not "
                    "(MemoryConfig.anchor_dates; default: MemoryConfig's, on)",
    "speaker_windows": "between named speakers, let every turn lead an extraction window, or not "
                       "(MemoryConfig.speaker_windows; default: MemoryConfig's, on)",
    "keep_superseded": "keep the text an UPDATE replaces as a superseded record that answers can list, or not "
                       "(MemoryConfig.keep_superseded; default: MemoryConfig's, on)",
    "date_answers": "answer 'When ...?' with the date of the best-ranked memory that states one, or not "
                    "(MemoryConfig.date_answers; default: MemoryConfig's, on)",
    "written_date_answers": "with --date-answers, answer 'When ...?' with the day the best-ranked memory was "
                            "written when none states a date, or not (MemoryConfig.written_date_answers; default: "
                            "MemoryConfig's, on)",
    "polar_answers": "answer a yes/no question with the verdict its answer opens with, the rest as its reason "
                     "(MemoryConfig.polar_answers; default: MemoryConfig's, on)",
}
"""The boolean ``MemoryConfig`` fields that commands offer as ``--[no-]field-name``, with their help."""

_MEMORY_CHOICES = {
    "short_windows": (SHORT_WINDOWS, "which of the shorter windows --speaker-windows adds are read: those whose "
                                     "leading message speaks in the first person, or all "
                                     "(MemoryConfig.short_windows; default: MemoryConfig's, first_person)"),
    "update_context": (UPDATE_CONTEXTS, "the old memories each per-fact update call lists: its fact's nearest, or "
                                        "every fact's (MemoryConfig.update_context; default: MemoryConfig's, own)"),
    "unchanged_updates": (UNCHANGED_UPDATES, "an UPDATE that copies its memory's text in a one-fact call: the "
                                             "UPDATE of that memory with the fact, or nothing "
                                             "(MemoryConfig.unchanged_updates; default: MemoryConfig's, fact)"),
    "answer_superseded": (ANSWER_SUPERSEDED, "which retrieved superseded records an answer lists "
                                             "(MemoryConfig.answer_superseded; default: MemoryConfig's, "
                                             "unless_successor)"),
}
"""The ``MemoryConfig`` fields that commands offer as ``--field-name CHOICE``: their choices and help."""

_MEMORY_THRESHOLDS = {
    "update_min_similarity": ("COSINE", "check each UPDATE and DELETE against the memory it names, names masked, and "
                                        "reject it under this cosine (MemoryConfig.update_min_similarity); 'off' turns "
                                        "the check off (default: MemoryConfig's)"),
    "source_weight": ("WEIGHT", "store each fact of an add under its own embedding plus this weight times the "
                                "embedding of the window it was extracted from (MemoryConfig.source_weight); 'off' "
                                "stores the fact's own (default: MemoryConfig's)"),
    "answer_lexical_weight": ("WEIGHT", "re-order an answer's vector candidates by cosine plus this weight times "
                                        "their BM25 match with the question, memory text and source window "
                                        "(MemoryConfig.answer_lexical_weight); 'off': the vector order "
                                        "(default: MemoryConfig's)"),
    "search_lexical_weight": ("WEIGHT", "the same re-ordering for search, the integrations' read "
                                        "(MemoryConfig.search_lexical_weight); 'off': the vector order "
                                        "(default: MemoryConfig's)"),
    "decline_other_subject": ("MARGIN", "decline a question about one person that only another person's memories "
                                        "answer (MemoryConfig.decline_other_subject, a cosine margin); 'off' turns "
                                        "the check off (default: MemoryConfig's, 0.15)"),
    "decline_other_source": ("SHARE", "decline an answer whose words come from another person's memory "
                                      "(MemoryConfig.decline_other_source, a share of its words); 'off' turns the "
                                      "check off (default: MemoryConfig's, 0.5)"),
}
"""The optional-number ``MemoryConfig`` fields that commands offer as ``--field-name NUMBER|off``: metavar, help."""

_MEMORY_COUNTS = {
    "answer_turns": ("N", "follow the first N memories an answer lists with the conversation turn they were written "
                          "from; 0: facts only (MemoryConfig.answer_turns; default: MemoryConfig's, 1)"),
}
"""The integer ``MemoryConfig`` fields that commands offer as ``--field-name N``: metavar, help."""


def add_memory_switches(parser: argparse.ArgumentParser) -> None:
    """One option per ``MemoryConfig`` field in the tables above: ``--[no-]NAME`` for a switch, a choice,
    a number or ``off`` for a threshold (:func:`number_or_off`), a count. ``NAME`` is the field's name with
    dashes (``--written-date-answers``, ``--answer-lexical-weight 0.4``).

    Each is None unless given (then the ``MemoryConfig`` default holds); :func:`memory_switches` reads them back.
    """
    for name, text in _MEMORY_SWITCHES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, help=text)
    for name, (choices, text) in _MEMORY_CHOICES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=choices, help=text)
    for name, (metavar, text) in _MEMORY_THRESHOLDS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=number_or_off, metavar=metavar, help=text)
    for name, (metavar, text) in _MEMORY_COUNTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, metavar=metavar, help=text)


def memory_switches(args: argparse.Namespace) -> dict[str, Any]:
    """The ``MemoryConfig`` fields that :func:`add_memory_switches`' options set (those given only)."""
    given = {name: value for name in (*_MEMORY_SWITCHES, *_MEMORY_CHOICES, *_MEMORY_THRESHOLDS, *_MEMORY_COUNTS)
             if (value := getattr(args, name)) is not None}
    return {name: threshold(value) if name in _MEMORY_THRESHOLDS else value for name, value in given.items()}


def chosen_runtime(args: argparse.Namespace, *, dtype: str = "auto", batch_generation: bool = False) -> str:
    """The runtime ``--runtime`` asks for, ``auto`` resolved for ``args.model`` and these options.

    Commands store it back in ``args.runtime`` before loading, so their reports and run
    caches name the runtime that ran, never ``auto``.
    """
    return resolve_runtime(args.runtime, args.model, dtype=dtype, batch_generation=batch_generation)


def number_or_off(value: str) -> float | str:
    """An argparse type: a number (a cosine threshold or margin), or ``"off"`` to turn a check off."""
    if value == "off":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or 'off', got {value!r}") from None


def threshold(value: float | str) -> float | None:
    """A :func:`number_or_off` value as a ``MemoryConfig`` threshold field takes it (``"off"``: None, no check)."""
    return None if value == "off" else float(value)
