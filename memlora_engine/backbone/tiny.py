"""A tiny random-weight backbone built in-process, for tests and examples.

Real transformers + peft code paths, no download, built in well under a second: a
2-layer Llama with a byte-level tokenizer (every string encodes, so constrained JSON
decoding works), plus random-init LoRA adapters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.errors import require

__all__ = ["make_lora_adapter", "tiny_backbone", "tiny_model", "tiny_tokenizer", "tiny_vlm", "tiny_vlm_backbone"]

_SPECIALS = ("<pad>", "<bos>", "<eos>")


def tiny_tokenizer(
    chat_template: str | None = None, *, extra_special_tokens: Sequence[str] | Mapping[str, str] = ()
) -> Any:
    """A byte-level BPE tokenizer (256 byte tokens + pad/bos/eos), wrapped as a fast tokenizer.

    Args:
        chat_template: the tokenizer's chat template.
        extra_special_tokens: more special tokens, with ids from 259 on in this order, such as
            a VLM's processor needs (``<image>``, ``<|vision_start|>``, ...). A mapping also
            names them, as a hub ``tokenizer_config.json`` does: ``{"context_image_token":
            "<IMG_CONTEXT>"}`` gives ``tokenizer.context_image_token`` and its ``_id``.
    """
    tokenizers = require("tokenizers", "hf")
    transformers = require("transformers", "hf")
    alphabet = tokenizers.pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(_SPECIALS)}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    model = tokenizers.models.BPE(vocab=vocab, merges=[])
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = tokenizers.decoders.ByteLevel()
    extra = list(extra_special_tokens.values() if isinstance(extra_special_tokens, Mapping) else extra_special_tokens)
    backend.add_special_tokens([*_SPECIALS, *extra])
    backend.post_processor = tokenizers.processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    named = dict(extra_special_tokens) if isinstance(extra_special_tokens, Mapping) else extra
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        **({"extra_special_tokens": named} if extra else {}),
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_model(vocab_size: int, *, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Any:
    """A random-weight 2-layer Llama causal LM (float32, eval mode)."""
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    return model.eval()


def make_lora_adapter(model: Any, path: str | os.PathLike[str], *, seed: int = 0, rank: int = 8) -> Path:
    """Save a random-init LoRA adapter (q/v projections) for ``model`` at ``path``.

    ``init_lora_weights=False`` makes both LoRA matrices random, so the adapter changes
    the output (peft's default init is a no-op until trained). ``model`` is not modified.
    """
    import copy

    torch = require("torch", "hf")
    peft = require("peft", "hf")
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = peft.get_peft_model(copy.deepcopy(model), config)
    peft_model.save_pretrained(os.fspath(path))
    return Path(path)


def tiny_backbone(
    adapters: dict[str, str | os.PathLike[str]] | None = None, *, seed: int = 0, constrained: bool = True
) -> Any:
    """An :class:`~memlora_engine.backbone.HFBackbone` on :func:`tiny_model` (plain prompts)."""
    from memlora_engine.backbone.hf import HFBackbone

    tokenizer = tiny_tokenizer()
    return HFBackbone(
        tiny_model(len(tokenizer), seed=seed), tokenizer, adapters=adapters, constrained=constrained, name="tiny"
    )


_VLM_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_vlm(*, seed: int = 0, hidden_size: int = 32, image_size: int = 32) -> tuple[Any, Any]:
    """A random-weight LLaVA (2-layer CLIP vision tower + 2-layer Llama) and its real processor.

    Returns ``(model, processor)``: ``LlavaForConditionalGeneration`` and a
    ``LlavaProcessor`` (CLIP image processor, :func:`tiny_tokenizer` with an ``<image>``
    token, a chat template taking image parts), so the image-text-to-text code paths run
    as they do for a real VLM. ``save_pretrained`` both into one directory and
    ``AutoModelForImageTextToText`` / ``AutoProcessor`` load it back.
    """
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    tokenizer = tiny_tokenizer(_VLM_TEMPLATE)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    patch = image_size // 4
    vision = transformers.CLIPVisionConfig(
        hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2, num_attention_heads=4,
        image_size=image_size, patch_size=patch, projection_dim=hidden_size,
    )
    text = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    config = transformers.LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = transformers.LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    image_processor = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="default", chat_template=_VLM_TEMPLATE, num_additional_image_tokens=1,
    )
    return model.eval(), processor


def tiny_vlm_backbone(
    adapters: dict[str, str | os.PathLike[str]] | None = None, *, seed: int = 0, constrained: bool = True
) -> Any:
    """A :class:`~memlora_engine.backbone.vlm.VLMBackbone` on :func:`tiny_vlm`."""
    from memlora_engine.backbone.vlm import VLMBackbone

    model, processor = tiny_vlm(seed=seed)
    return VLMBackbone(model, processor, adapters=adapters, constrained=constrained, name="tiny-vlm")
