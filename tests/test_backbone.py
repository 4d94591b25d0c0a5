"""The transformers + peft backbone on a tiny in-process model: adapters, scoping, streaming."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from stream_helpers import drain  # noqa: E402

from memlora_engine.backbone import HFBackbone  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_backbone, tiny_model, tiny_tokenizer  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402
from memlora_engine.generator import Generation, GenerationRequest, Generator  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

PROMPT = [{"role": "system", "content": "Extract facts."}, {"role": "user", "content": "I like tea."}]


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    base = tiny_model(len(tiny_tokenizer()))
    return {
        "extraction": make_lora_adapter(base, root / "extraction", seed=1),
        "update": make_lora_adapter(base, root / "update", seed=2),
    }


@pytest.fixture(scope="module")
def backbone(adapter_dirs):
    return tiny_backbone(adapters=adapter_dirs)


def _logits(backbone: HFBackbone, operation: Operation) -> torch.Tensor:
    ids = backbone.tokenizer("hello world", return_tensors="pt")
    with backbone.operation(operation) as model:
        return model(**ids).logits


def _reference_logits(adapter_dir=None) -> torch.Tensor:
    """Logits of a fresh base model, with only ``adapter_dir`` applied (or none)."""
    from peft import PeftModel

    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer))
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    with torch.inference_mode():
        return model(**tokenizer("hello world", return_tensors="pt")).logits


def test_satisfies_generator_protocol(backbone):
    assert isinstance(backbone, Generator)


def test_has_adapter_only_for_loaded_operations(backbone):
    assert backbone.has_adapter(Operation.EXTRACTION)
    assert backbone.has_adapter(Operation.UPDATE)
    assert not backbone.has_adapter(Operation.GENERATION)
    assert not backbone.has_adapter(Operation.VQA)


def test_each_operation_runs_its_own_adapter(backbone, adapter_dirs):
    extraction = _logits(backbone, Operation.EXTRACTION)
    update = _logits(backbone, Operation.UPDATE)
    generation = _logits(backbone, Operation.GENERATION)
    assert not torch.allclose(extraction, update)
    assert not torch.allclose(extraction, generation)
    # Same numbers as the adapter alone on a fresh base model: the right one was active.
    torch.testing.assert_close(extraction, _reference_logits(adapter_dirs["extraction"]))
    torch.testing.assert_close(update, _reference_logits(adapter_dirs["update"]))
    # No adapter -> the plain base model.
    torch.testing.assert_close(generation, _reference_logits())


def test_previous_adapter_state_is_restored(backbone, adapter_dirs):
    backbone.model.set_adapter("memlora_update", inference_mode=True)
    backbone.generate(GenerationRequest(Operation.EXTRACTION, PROMPT, max_new_tokens=2))
    assert backbone.model.active_adapter == "memlora_update"
    backbone.generate(GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=2))
    assert backbone.model.active_adapter == "memlora_update"
    # disable_adapter() was undone: the active adapter changes the output again.
    ids = backbone.tokenizer("hello world", return_tensors="pt")
    with torch.inference_mode():
        logits = backbone.model(**ids).logits
    torch.testing.assert_close(logits, _reference_logits(adapter_dirs["update"]))


def test_state_restored_when_generation_fails(backbone):
    backbone.model.set_adapter("memlora_update", inference_mode=True)
    with pytest.raises(RuntimeError), backbone.operation(Operation.EXTRACTION):
        assert backbone.model.active_adapter == "memlora_extraction"
        raise RuntimeError("boom")
    assert backbone.model.active_adapter == "memlora_update"


def test_adapters_are_frozen_and_inference_mode(backbone):
    assert not any(p.requires_grad for p in backbone.model.parameters())
    with backbone.operation(Operation.EXTRACTION):
        assert torch.is_inference_mode_enabled()


def test_generate_is_greedy_and_counts_tokens(backbone):
    request = GenerationRequest(Operation.EXTRACTION, PROMPT, max_new_tokens=6)
    first, second = backbone.generate(request), backbone.generate(request)
    assert isinstance(first, Generation)
    assert first == second
    assert first.input_tokens == backbone.count_tokens("Extract facts.\n\nI like tea.") + 1  # + <bos>
    assert 1 <= first.output_tokens <= 6


def test_context_length_is_the_model_s(backbone):
    from memlora_engine.generator import SupportsContextLength

    assert isinstance(backbone, SupportsContextLength)
    assert backbone.context_length == 8192  # tiny_model's max_position_embeddings


def test_operations_give_different_outputs(backbone):
    texts = {op: backbone.generate(GenerationRequest(op, PROMPT, max_new_tokens=8)).text for op in Operation}
    assert texts[Operation.EXTRACTION] != texts[Operation.UPDATE]
    assert texts[Operation.GENERATION] == texts[Operation.VQA]  # both run the base model


def test_stream_matches_generate(backbone):
    request = GenerationRequest(Operation.UPDATE, PROMPT, max_new_tokens=10)
    chunks = list(backbone.stream(request))
    assert "".join(chunks) == backbone.generate(request).text
    assert backbone.model.active_adapter in {"memlora_extraction", "memlora_update"}


def test_a_stream_run_to_its_end_returns_the_generation_with_its_counts(backbone):
    request = GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=10)
    chunks, streamed = drain(backbone.stream(request))
    assert streamed == backbone.generate(request)
    assert streamed.text == "".join(chunks)


def test_stream_closed_early_releases_the_lock(backbone):
    stream = backbone.stream(GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=50))
    next(stream, None)
    stream.close()
    assert backbone.generate(GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=2)).output_tokens >= 1


def test_concurrent_calls_are_serialised(backbone):
    requests = [GenerationRequest(op, PROMPT, max_new_tokens=5) for op in (Operation.EXTRACTION, Operation.UPDATE) * 3]
    expected = [backbone.generate(r).text for r in requests]
    results: list[str | None] = [None] * len(requests)

    def run(i: int) -> None:
        results[i] = backbone.generate(requests[i]).text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_base_model_without_any_adapter():
    plain = tiny_backbone()
    assert not any(plain.has_adapter(op) for op in Operation)
    assert plain.generate(GenerationRequest(Operation.EXTRACTION, PROMPT, max_new_tokens=3)).output_tokens >= 1


def test_adapter_added_later_and_replaced(tmp_path):
    backbone = tiny_backbone()
    before = _logits(backbone, Operation.GENERATION)
    make_lora_adapter(backbone.model, tmp_path / "gen1", seed=5)
    make_lora_adapter(backbone.model, tmp_path / "gen2", seed=6)
    backbone.add_adapter("generation", tmp_path / "gen1")
    first = _logits(backbone, Operation.GENERATION)
    backbone.add_adapter("generation", tmp_path / "gen2")
    second = _logits(backbone, Operation.GENERATION)
    assert not torch.allclose(before, first)
    assert not torch.allclose(first, second)


def test_missing_adapter_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="extraction adapter"):
        tiny_backbone(adapters={"extraction": tmp_path / "nope"})


def test_chat_template_is_used_when_present():
    template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}[assistant]"
    tokenizer = tiny_tokenizer(chat_template=template)
    backbone = HFBackbone(tiny_model(len(tokenizer)), tokenizer)
    result = backbone.generate(GenerationRequest(Operation.GENERATION, PROMPT, max_new_tokens=2))
    expected = backbone.count_tokens("[system]Extract facts.[user]I like tea.[assistant]")
    assert result.input_tokens == expected  # no extra <bos>: the template owns special tokens


def test_describe(backbone):
    info = backbone.describe()
    assert info["adapters"] == {"extraction": "memlora_extraction", "update": "memlora_update"}
    assert info["parameters"] > 0 and info["constrained"] is True
    assert "extraction" in repr(backbone)
