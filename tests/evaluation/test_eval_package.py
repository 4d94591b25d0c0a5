"""The evaluation package's public surface and import cost."""

from __future__ import annotations

import subprocess
import sys

import memlora_engine.evaluation as evaluation


def test_all_is_sorted_and_resolves():
    assert list(evaluation.__all__) == sorted(evaluation.__all__)
    for name in evaluation.__all__:
        assert getattr(evaluation, name) is not None


def test_import_is_light():
    code = (
        "import sys, memlora_engine.evaluation, memlora_engine.commands.eval\n"
        "heavy = [m for m in ('torch', 'nltk', 'rouge_score', 'matplotlib', 'chromadb', 'sentence_transformers',"
        " 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
