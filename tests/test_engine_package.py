"""The package surface: exports, silent import, config, the real embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import memlora_engine
from memlora_engine import MemoryConfig
from memlora_engine.errors import ConfigError


def test_all_is_sorted_and_resolves() -> None:
    assert memlora_engine.__all__ == sorted(memlora_engine.__all__)
    for name in memlora_engine.__all__:
        assert getattr(memlora_engine, name) is not None


def test_import_is_light_silent_and_creates_no_files(tmp_path) -> None:
    code = (
        "import sys, json, memlora_engine, memlora_engine.memory, memlora_engine.store, memlora_engine.commands;"
        "from memlora_engine import Memory, MemoryConfig, AsyncMemory;"
        "heavy = [m for m in ('torch', 'chromadb', 'transformers', 'sentence_transformers', 'peft') if m in sys.modules];"
        "print(json.dumps(heavy))"
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_default_data_dir_is_per_user_not_cwd() -> None:
    path = MemoryConfig().resolved_data_dir
    assert path.is_absolute() and path != os.getcwd() and "memlora" in str(path)


def test_config_validation_and_forward_compatible_loading() -> None:
    with pytest.raises(ConfigError):
        MemoryConfig(store="redis")
    with pytest.raises(ConfigError):
        MemoryConfig(prompt_style="long")
    with pytest.raises(ConfigError):
        MemoryConfig(update_top_k=0)
    with pytest.warns(UserWarning, match="future_knob"):
        config = MemoryConfig.from_dict({"store": "memory", "future_knob": 1})
    assert config.store == "memory" and MemoryConfig.from_dict(config.to_dict()) == config


def test_prompts_render_every_style_and_operation() -> None:
    from memlora_engine.prompts import PROMPT_STYLES, render_prompt
    from memlora_engine.types import Operation

    values = {"date": "2026-01-01", "conversation": "user: hi", "old_memories": "[]", "facts": "[]",
              "memories": "- x", "question": "q?"}
    for style in PROMPT_STYLES:
        for op in (Operation.EXTRACTION, Operation.UPDATE, Operation.GENERATION):
            system, user = render_prompt(style, op, **values)
            assert system["role"] == "system" and user["role"] == "user"
            assert "$" not in system["content"] + user["content"]
    assert len(memlora_engine.prompts.PROMPT_VERSION) == 12
    with pytest.raises(ConfigError, match="needs"):
        render_prompt("memlora", Operation.EXTRACTION, date="2026-01-01")


def test_sentence_transformer_embedder_loads_offline_from_pypi_package() -> None:
    from memlora_engine import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    tea, tea2, tax = embedder.embed(["She loves green tea", "Her favourite drink is tea", "File the tax return"])
    assert len(tea) == 384

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cos(tea, tea2) > cos(tea, tax) + 0.2
