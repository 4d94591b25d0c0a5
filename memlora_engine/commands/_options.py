"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import argparse

from memlora_engine.backbone.loader import RUNTIMES

__all__ = ["add_runtime_argument"]


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime``: what runs the model (``load_backbone(..., runtime=...)``)."""
    parser.add_argument("--runtime", default="transformers", choices=RUNTIMES,
                        help="what runs the model (default: transformers; llama.cpp runs the GGUF file with the "
                             "adapters converted to GGUF LoRA, pip install \"memlora[llamacpp]\")")
