"""The vision-language backbone on a tiny real LLaVA (random weights, real processor and peft).

What every family must do (the pixels reach the model, the vqa adapter, constrained VQA,
text operations, training's encoding) is in ``test_vision_families.py``, LLaVA included.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine.backbone import HFBackbone, VLMBackbone, encode_vlm, load_backbone  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_backbone, tiny_vlm, tiny_vlm_backbone  # noqa: E402
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


def test_the_prompt_puts_the_image_before_the_question(backbone, photos):
    inputs = encode_vlm(backbone.processor, PROMPT, [photos["coffee"]])
    text = backbone.tokenizer.decode(inputs["input_ids"][0])
    assert text.index("<image>") < text.index("Question: What colour is the cup?")
    assert text.startswith("<|system|>Answer the question about the image") and text.endswith("<|assistant|>")
    assert inputs["pixel_values"].shape[0] == 1


def test_context_length_is_the_language_model_s(backbone):
    # A Llava config keeps max_position_embeddings in its text config only.
    assert not hasattr(backbone.model.config, "max_position_embeddings")
    assert backbone.context_length == 8192


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


def test_a_photo_is_never_answered_from_another_photo_s_cached_states(vqa_adapter, photos):
    """Image tokens have the same ids for every photo: the VLM backbone keeps no prefix cache and runs no batches."""
    from memlora_engine.generator import GenerationRequest

    backbone = tiny_vlm_backbone(adapters={"vqa": vqa_adapter})
    assert backbone.prefix_cache is None and not backbone.supports_batch_generation
    requests = [GenerationRequest(Operation.VQA, PROMPT, None, 12, images=(photos[name],)) for name in ("coffee", "chelsea")]
    together = [backbone.generate(r).text for r in requests] + [g.text for g in backbone.generate_batch(requests)]
    alone = [tiny_vlm_backbone(adapters={"vqa": vqa_adapter}).generate(r).text for r in requests]
    assert together == alone + alone
