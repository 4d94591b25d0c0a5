"""VLMBackbone on each family it promises to run unchanged: LLaVA, InternVL, Qwen2-VL, Idefics3 (SmolVLM).

Each family is a random-weight model built from its transformers config, paired with its
*real* processor and image processor (``InternVLProcessor`` + GotOcr2, ``Qwen2VLProcessor``
+ ``Qwen2VLImageProcessor``, ``Idefics3Processor`` + ``Idefics3ImageProcessor``) around
:func:`~memlora_engine.backbone.tiny.tiny_tokenizer` with the special tokens that processor
needs, and the family's hub chat template (InternVL3-hf, Qwen2-VL-Instruct, SmolVLM-Instruct).
It is saved to a directory and loaded by ``load_backbone``'s auto-detection, as a hub model
is, so the placeholder expansion, tiling (InternVL, Idefics3), patch grids and 3-D M-RoPE
(Qwen2-VL) all run as they do on the real models, at 32-pixel tiles.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402
from transformers.video_processing_utils import VideoProcessorMixin  # noqa: E402

from memlora_engine.backbone import VLMBackbone, encode_vlm, load_backbone  # noqa: E402
from memlora_engine.backbone.tiny import make_lora_adapter, tiny_tokenizer, tiny_vlm  # noqa: E402
from memlora_engine.errors import ConfigError  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.images import open_image  # noqa: E402
from memlora_engine.parsing import EXTRACTION_SCHEMA, VQA_SCHEMA  # noqa: E402
from memlora_engine.prompts import render_prompt  # noqa: E402
from memlora_engine.training import collate, encode_record, vqa_prompt  # noqa: E402
from memlora_engine.training.trainer import _loss  # noqa: E402
from memlora_engine.types import Operation  # noqa: E402

QUESTION = "What colour is the cup?"
PROMPT = render_prompt("memlora", Operation.VQA, question=QUESTION)
SIDE = 32  # the vision tower's input: one tile (InternVL, Idefics3), the longest resized side (LLaVA)
PATCH = SIDE // 4  # a 4 x 4 patch grid per tile

# The hub chat templates (InternVL3-1B-hf, Qwen2-VL-*-Instruct, SmolVLM-*-Instruct).
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _text_config(vocab_size: int, **extra: Any) -> dict[str, Any]:
    return dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False, **extra)


def _vision_config(**extra: Any) -> dict[str, Any]:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, **extra)


class _NoVideos(VideoProcessorMixin):
    """Stands in for InternVL's / Qwen2-VL's video processor where torchvision is missing; no test sends a video."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a stand-in video processor: these tests send images only")


@contextmanager
def _video_processors() -> Iterator[Callable[[str], Any]]:
    """Yields ``make(class name)``: the video processor InternVL's and Qwen2-VL's processors take.

    transformers 5 builds those processors with a video processor, and its classes (and the
    base class the processor checks the argument against) need torchvision, which this
    project's CPU environment lacks: ``AutoProcessor`` then fails on the video part of a
    real hub checkpoint too. With torchvision this yields the real classes and patches
    nothing. Without, a stand-in that refuses videos, with the class check and
    ``AutoVideoProcessor`` made to accept it while the block runs (building, saving and
    ``load_backbone``); everything an image request touches stays real.
    """
    if importlib.util.find_spec("torchvision") is not None:
        yield lambda name: getattr(transformers, name)()
        return
    from transformers import processing_utils

    # (imported by path: the lazy ``transformers.models.auto`` attribute refuses it without torchvision)
    video_processing_auto = importlib.import_module("transformers.models.auto.video_processing_auto")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processing_utils.transformers_module, "VideoProcessorMixin", VideoProcessorMixin, raising=False)
        patch.setattr(video_processing_auto.AutoVideoProcessor, "from_pretrained",
                      classmethod(lambda cls, *args, **kwargs: _NoVideos()))
        yield lambda name: _NoVideos()


def _llava(video: None) -> tuple[Any, Any]:
    return tiny_vlm(image_size=SIDE)


def _internvl(video: Callable[[str], Any]) -> tuple[Any, Any]:
    tokenizer = tiny_tokenizer(INTERNVL_TEMPLATE, extra_special_tokens={
        "start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>"})
    tokens_per_tile = (SIDE // PATCH) ** 2 // 4  # pixel shuffle at downsample_ratio 0.5
    config = transformers.InternVLConfig(
        vision_config=_vision_config(image_size=[SIDE, SIDE], patch_size=[PATCH, PATCH]),
        text_config=dict(model_type="qwen2", **_text_config(len(tokenizer))),
        image_token_id=tokenizer.context_image_token_id, image_seq_length=tokens_per_tile)
    model = transformers.InternVLForConditionalGeneration(config)
    # crop_to_patches: tiles of SIDE pixels + a thumbnail, as InternVL3 tiles a photo into 448-pixel crops.
    image_processor = transformers.GotOcr2ImageProcessor(size={"height": SIDE, "width": SIDE}, crop_to_patches=True,
                                                         max_patches=4)
    processor = transformers.InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                               video_processor=video("InternVLVideoProcessor"),
                                               image_seq_length=tokens_per_tile, chat_template=INTERNVL_TEMPLATE)
    return model, processor


def _qwen2_vl(video: Callable[[str], Any]) -> tuple[Any, Any]:
    tokenizer = tiny_tokenizer(QWEN2_VL_TEMPLATE, extra_special_tokens=[
        "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.extra_special_tokens}
    config = transformers.Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, spatial_merge_size=2,
                           patch_size=PATCH, temporal_patch_size=2, in_channels=3),
        # head_dim 8: M-RoPE's temporal/height/width sections split its 4 rotary frequencies
        text_config=_text_config(len(tokenizer), rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    model = transformers.Qwen2VLForConditionalGeneration(config)
    # Resized to a multiple of PATCH * merge within [min, max] pixels: a grid of PATCH-pixel patches, 2 x 2 merged per token.
    image_processor = transformers.Qwen2VLImageProcessor(
        patch_size=PATCH, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": (2 * PATCH) ** 2, "longest_edge": (2 * SIDE) ** 2})
    processor = transformers.Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                              video_processor=video("Qwen2VLVideoProcessor"),
                                              chat_template=QWEN2_VL_TEMPLATE)
    return model, processor


def _idefics3(video: None) -> tuple[Any, Any]:
    grid = [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]
    tokenizer = tiny_tokenizer(SMOLVLM_TEMPLATE, extra_special_tokens=[
        "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid])
    tokens_per_tile = (SIDE // PATCH) ** 2 // 4  # pixel shuffle at scale_factor 2
    # do_image_splitting: the photo resized to 2 x SIDE, cut into SIDE-pixel tiles + the whole image, as SmolVLM does.
    image_processor = transformers.Idefics3ImageProcessor(do_image_splitting=True, size={"longest_edge": 2 * SIDE},
                                                          max_image_size={"longest_edge": SIDE})
    processor = transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                               image_seq_len=tokens_per_tile, chat_template=SMOLVLM_TEMPLATE)
    config = transformers.Idefics3Config(
        vision_config=_vision_config(image_size=SIDE, patch_size=PATCH),
        text_config=dict(model_type="llama", **_text_config(len(processor.tokenizer))),
        image_token_id=processor.image_token_id, scale_factor=2)
    model = transformers.Idefics3ForConditionalGeneration(config)
    return model, processor


@dataclass(frozen=True)
class Family:
    name: str
    builder: Callable[[Any], tuple[Any, Any]]  # (video processor factory or None) -> (model, processor)
    model_class: str
    processor_class: str
    image_opens: str  # the text the processor expands an image part into starts with this
    takes_video: bool = False  # its processor takes a video processor (see _video_processors)


FAMILIES = {f.name: f for f in (
    Family("llava", _llava, "LlavaForConditionalGeneration", "LlavaProcessor", "<image>"),
    Family("internvl", _internvl, "InternVLForConditionalGeneration", "InternVLProcessor", "<img><IMG_CONTEXT>",
           takes_video=True),
    Family("qwen2-vl", _qwen2_vl, "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor",
           "<|vision_start|><|image_pad|>", takes_video=True),
    Family("idefics3", _idefics3, "Idefics3ForConditionalGeneration", "Idefics3Processor",
           "<fake_token_around_image><row_1_col_1><image>"),
)}


@dataclass(frozen=True)
class Loaded:
    family: Family
    backbone: VLMBackbone


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Any]:
    """Real photographs (shrunk: every processor here works at 32-64 pixels), as files and as the engine decodes them."""
    root = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("coffee", "chelsea"):
        image = Image.fromarray(getattr(skimage_data, name)()).convert("RGB")
        image.thumbnail((96, 96))
        path = root / f"{name}.png"
        image.save(path)
        out[name] = path
        out[f"{name}.image"] = open_image(path.read_bytes())
    return out


@pytest.fixture(scope="module", params=list(FAMILIES))
def loaded(request, tmp_path_factory) -> Loaded:
    """The family's tiny model saved as a model directory and loaded by ``load_backbone`` with a random vqa adapter."""
    family = FAMILIES[request.param]
    root = tmp_path_factory.mktemp(family.name)
    with _video_processors() if family.takes_video else nullcontext() as video:
        torch.manual_seed(0)
        model, processor = family.builder(video)
        model.generation_config.eos_token_id = 2
        model.generation_config.pad_token_id = 0
        model.eval()
        model.save_pretrained(root / "model")
        processor.save_pretrained(root / "model")
        adapter = make_lora_adapter(model, root / "vqa", seed=3)
        backbone = load_backbone(root / "model", adapters={"vqa": adapter}, dtype="float32", num_threads=1)
    return Loaded(family, backbone)


def _logits(backbone, operation, image):
    inputs = encode_vlm(backbone.processor, PROMPT, [image])
    with backbone.operation(operation) as model:
        return model(**inputs).logits[0, -1]


def test_load_backbone_detects_the_family_and_its_processor(loaded):
    backbone, family = loaded.backbone, loaded.family
    assert isinstance(backbone, VLMBackbone)
    assert type(backbone.processor).__name__ == family.processor_class
    assert type(backbone.model.get_base_model()).__name__ == family.model_class
    assert backbone.has_adapter(Operation.VQA) and not backbone.has_adapter(Operation.GENERATION)
    assert backbone.describe()["vision"] is True and backbone.describe()["processor"] == family.processor_class


def test_the_prompt_expands_the_image_before_the_question(loaded, photos):
    backbone, family = loaded.backbone, loaded.family
    inputs = encode_vlm(backbone.processor, PROMPT, [photos["coffee.image"]])
    text = backbone.tokenizer.decode(inputs["input_ids"][0])
    system = PROMPT[0]["content"][:40]
    assert text.index(system) < text.index(family.image_opens) < text.index(f"Question: {QUESTION}")
    image_tokens = int((inputs["input_ids"][0] == backbone.processor.image_token_id).sum())
    assert image_tokens >= 4  # expanded to the vision tower's features, not the template's one placeholder
    assert "pixel_values" in inputs


def test_the_model_sees_the_pixels(loaded, photos):
    backbone = loaded.backbone
    assert not torch.allclose(_logits(backbone, Operation.VQA, photos["coffee.image"]),
                              _logits(backbone, Operation.VQA, photos["chelsea.image"]))


def test_the_vqa_adapter_is_switched_in_for_vqa_only(loaded, photos):
    backbone = loaded.backbone
    assert not torch.allclose(_logits(backbone, Operation.VQA, photos["coffee.image"]),
                              _logits(backbone, Operation.GENERATION, photos["coffee.image"]))
    assert backbone.model.active_adapter == "memlora_vqa"  # the only adapter: left active, nothing to restore


def test_constrained_vqa_decoding_starts_the_answer_object(loaded, photos):
    backbone = loaded.backbone
    request = GenerationRequest(Operation.VQA, PROMPT, json_schema=VQA_SCHEMA, max_new_tokens=12,
                                images=(photos["coffee.image"],))
    generation = backbone.generate(request)
    assert generation.text.startswith('{"answer": "') and generation.output_tokens <= 12
    prompt = encode_vlm(backbone.processor, PROMPT, [photos["coffee.image"]])["input_ids"]
    assert generation.input_tokens == prompt.shape[1]  # the image's expanded tokens included


def test_text_requests_still_run_on_the_vision_model(loaded):
    request = GenerationRequest(Operation.EXTRACTION, render_prompt("memlora", Operation.EXTRACTION,
                                conversation="user: I like tea", date="2026-01-01"),
                                json_schema=EXTRACTION_SCHEMA, max_new_tokens=16)
    assert loaded.backbone.generate(request).text.startswith('{"facts": [')


def test_training_examples_are_the_inference_encoding_and_score_in_a_batch(loaded, photos):
    """encode_vlm's training examples: the prompt the backbone sends, and inputs the forward takes, batched or not."""
    backbone = loaded.backbone
    records = [
        {"operation": "vqa", "image": str(photos["coffee"]), "question": "What is in the photo?",
         "target": '{"answer": "cup", "reason": "A cup of coffee."}'},
        {"operation": "vqa", "image": str(photos["chelsea"]), "question": "Which animal is this, and what is it doing?",
         "target": '{"answer": "cat", "reason": ""}'},
    ]
    examples = [encode_record(backbone.processor, record) for record in records]
    inference = backbone._encode(GenerationRequest(Operation.VQA, vqa_prompt(records[0]["question"]),
                                                   json_schema=VQA_SCHEMA, images=(photos["coffee.image"],)))
    prompt = inference["input_ids"][0].tolist()
    assert list(examples[0].input_ids[: len(prompt)]) == prompt
    assert len(examples[0].input_ids) == len(prompt) + examples[0].target_length
    for key, value in examples[0].features().items():
        assert torch.equal(value, inference[key]), key
    with backbone.operation(Operation.VQA) as model:
        alone = [_loss(torch, model, collate(torch, [example], pad_id=0), False) for example in examples]
        batched, tokens = _loss(torch, model, collate(torch, examples, pad_id=0), False)
    assert [n for _, n in alone] == [e.target_length for e in examples] and tokens == sum(n for _, n in alone)
    assert all(torch.isfinite(loss) and loss.item() > 0 for loss, _ in alone)
    # Right padding changes nothing: not InternVL's tiles, not Qwen2-VL's M-RoPE positions (from the image grid).
    assert batched.item() == pytest.approx(sum(loss.item() for loss, _ in alone), rel=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
@pytest.mark.parametrize(("name", "video_class"), [("internvl", "InternVLVideoProcessor"),
                                                   ("qwen2-vl", "Qwen2VLVideoProcessor")])
def test_a_hub_checkpoint_whose_processor_needs_torchvision_fails_clearly(tmp_path, name, video_class):
    """Without torchvision, InternVL3 / Qwen2-VL checkpoints (their processors name a video processor) cannot load."""
    import json

    with _video_processors() as video:
        model, processor = FAMILIES[name].builder(video)
        model.save_pretrained(tmp_path)
        processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    config["video_processor"] = {"video_processor_type": video_class}  # as the hub checkpoint names it
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="cannot load vision model .*[Tt]orchvision"):
        load_backbone(tmp_path, adapters={}, dtype="float32", num_threads=1)
