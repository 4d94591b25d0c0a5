"""The vision-language backbone on a tiny real LLaVA (random weights, real processor and peft)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.backbone import HFBackbone, VLMBackbone, encode_vlm, load_backbone  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_backbone, tiny_vlm, tiny_vlm_backbone  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.parsing import VQA_SCHEMA  # noqa: E402
from memlora_engine.prompts import render_prompt  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

PROMPT = render_prompt("memlora", Operation.VQA, question="What colour is the cup?")


@pytest.fixture(scope="module")
def photos():
    return {name: Image.fromarray(getattr(skimage_data, name)()).convert("RGB") for name in ("coffee", "chelsea")}


@pytest.fixture(scope="module")
def vqa_adapter(tmp_path_factory):
    model, _ = tiny_vlm()
    return make_lora_adapter(model, tmp_path_factory.mktemp("adapters") / "vqa", seed=3)


@pytest.fixture(scope="module")
def backbone(vqa_adapter):
    return tiny_vlm_backbone(adapters={"vqa": vqa_adapter})


def _logits(backbone, operation, image):
    inputs = encode_vlm(backbone.processor, PROMPT, [image])
    with backbone.operation(operation) as model:
        return model(**inputs).logits[0, -1]


def test_the_prompt_puts_the_image_before_the_question(backbone, photos):
    inputs = encode_vlm(backbone.processor, PROMPT, [photos["coffee"]])
    text = backbone.tokenizer.decode(inputs["input_ids"][0])
    assert text.index("<image>") < text.index("Question: What colour is the cup?")
    assert text.startswith("<|system|>Answer the question about the image") and text.endswith("<|assistant|>")
    assert inputs["pixel_values"].shape[0] == 1


def test_the_model_sees_the_pixels(backbone, photos):
    assert not torch.allclose(_logits(backbone, Operation.VQA, photos["coffee"]),
                              _logits(backbone, Operation.VQA, photos["chelsea"]))


def test_the_vqa_adapter_is_switched_in_for_vqa_only(backbone, photos):
    assert backbone.has_adapter(Operation.VQA) and not backbone.has_adapter(Operation.GENERATION)
    assert not torch.allclose(_logits(backbone, Operation.VQA, photos["coffee"]),
                              _logits(backbone, Operation.GENERATION, photos["coffee"]))
    assert backbone.model.active_adapter == "memlora_vqa"  # the only adapter: left active, nothing to restore


def test_constrained_vqa_decoding_starts_the_answer_object(backbone, photos):
    request = GenerationRequest(Operation.VQA, PROMPT, json_schema=VQA_SCHEMA, max_new_tokens=12,
                                images=(photos["coffee"],))
    generation = backbone.generate(request)
    assert generation.text.startswith('{"answer": "') and generation.output_tokens <= 12
    assert generation.input_tokens > len(backbone.tokenizer("Question: What colour is the cup?")["input_ids"])


def test_text_requests_still_run_on_the_vision_model(backbone):
    request = GenerationRequest(Operation.EXTRACTION, render_prompt("memlora", Operation.EXTRACTION,
                                conversation="user: I like tea", date="2026-01-01"),
                                json_schema={"type": "object", "properties": {"facts": {"type": "array",
                                             "items": {"type": "string"}}}, "required": ["facts"]},
                                max_new_tokens=16)
    assert backbone.generate(request).text.startswith('{"facts": [')


def test_load_backbone_recognises_a_vision_model_directory(tmp_path, vqa_adapter):
    model, processor = tiny_vlm()
    model.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    loaded = load_backbone(tmp_path / "vlm", adapters={"vqa": vqa_adapter}, dtype="float32")
    assert isinstance(loaded, VLMBackbone) and loaded.has_adapter(Operation.VQA)
    assert loaded.describe()["vision"] is True

    text = tiny_backbone()
    text.model.save_pretrained(tmp_path / "text")
    text.tokenizer.save_pretrained(tmp_path / "text")
    plain = load_backbone(tmp_path / "text", adapters=None, dtype="float32")
    assert type(plain) is HFBackbone


def test_memory_on_a_tiny_vlm_answers_a_photo_question_with_the_vqa_adapter(tmp_path, backbone, photos):
    from memlora_engine.testing import DeterministicEmbedder

    memory = Memory(MemoryConfig(store="memory", max_new_tokens={"vqa": 16, "extraction": 16}),
                    generator=backbone, embedder=DeterministicEmbedder())
    turn = {"role": "user", "name": "Caroline", "content": [{"type": "text", "text": "My morning coffee"},
                                                          {"type": "image", "image": photos["coffee"]}]}
    result = memory.add(turn, user_id="c")
    assert any(e.text.startswith("Caroline shared a photo") for e in result)
    answer = memory.answer("What is in the photo of the coffee?", user_id="c")
    assert answer.operation == "vqa" and len(answer.image_ids) == 1
    assert memory.stats[Operation.VQA].calls == 1 and memory.stats[Operation.EXTRACTION].calls == 1
