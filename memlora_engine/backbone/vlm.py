"""A vision-language backbone: transformers' image-text-to-text models with per-operation adapters.

Any model ``AutoModelForImageTextToText`` loads (InternVL3 in its transformers format,
SmolVLM, Qwen2-VL, LLaVA, ...) with its ``AutoProcessor``. The text operations run on
the same model and adapters as :class:`~memlora_engine.backbone.HFBackbone`; a request
that carries images (``GenerationRequest.images``) gets them as image parts before the
text of its user message, rendered by the processor's chat template, so the model sees
the pixels (the ``vqa`` operation, and extraction of turns that share an image).

:func:`encode_vlm` is the one place a prompt with images becomes model inputs; the
trainer uses it too, so a VQA adapter is trained on exactly what it sees at inference.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from memlora_engine.backbone.hf import AdapterSource, HFBackbone
from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.generator import GenerationRequest, SupportsImages
from memlora_engine.types import Operation

__all__ = ["VLMBackbone", "encode_vlm", "is_vision_model", "load_vlm_backbone", "vlm_messages"]

logger = logging.getLogger(__name__)


def vlm_messages(messages: Sequence[dict[str, Any]], image_count: int) -> list[dict[str, Any]]:
    """Chat messages as content-part lists, with ``image_count`` image parts opening the last user message."""
    parts: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts.append({"role": message["role"], "content": list(content)})
    if image_count:
        users = [i for i, m in enumerate(parts) if m["role"] == "user"]
        if not users:
            raise ConfigError("a request with images needs a user message to carry them")
        last = parts[users[-1]]
        last["content"] = [{"type": "image"} for _ in range(image_count)] + last["content"]
    return parts


def _template(processor: Any, messages: list[dict[str, Any]]) -> str:
    try:
        return str(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    except Exception as exc:  # jinja TemplateError: e.g. "system role not supported"
        logger.debug("chat template rejected the messages (%s); folding the system prompt into the user turn", exc)
        system = "\n\n".join(p["text"] for m in messages if m["role"] == "system"
                             for p in m["content"] if p.get("type") == "text")
        rest = [{"role": m["role"], "content": list(m["content"])} for m in messages if m["role"] != "system"]
        if system and rest and rest[0]["role"] == "user":
            content = rest[0]["content"]
            texts = [i for i, p in enumerate(content) if p.get("type") == "text"]
            if texts:
                content[texts[0]] = {"type": "text", "text": f"{system}\n\n{content[texts[0]]['text']}"}
            else:
                content.append({"type": "text", "text": system})
        return str(processor.apply_chat_template(rest, tokenize=False, add_generation_prompt=True))


def encode_vlm(processor: Any, messages: Sequence[dict[str, Any]], images: Sequence[Any] = ()) -> Any:
    """Render ``messages`` (+ PIL ``images``) with the processor's chat template and encode them.

    Returns the processor's ``BatchFeature`` (``input_ids``, ``attention_mask`` and, with
    images, ``pixel_values`` and whatever else the model takes).
    """
    if not getattr(processor, "chat_template", None):
        raise ConfigError(f"{type(processor).__name__} has no chat template: a VLM backbone needs one")
    text = _template(processor, vlm_messages(messages, len(images)))
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt", "add_special_tokens": False}
    if images:
        kwargs["images"] = list(images)
    return processor(**kwargs)


class VLMBackbone(HFBackbone, SupportsImages):
    """A :class:`HFBackbone` on an image-text-to-text model; requests may carry images.

    Args:
        model: the ``AutoModelForImageTextToText`` model, on its device and dtype.
        processor: its ``AutoProcessor`` (tokenizer, image processor, chat template).
        adapters, constrained, name: as for :class:`HFBackbone` (``"vqa"`` is one more
            operation).

    No prefix cache and no batches: the states of image tokens depend on the pixels, not
    on the token ids a cached prefix is keyed by, and a batch would have to carry each
    row's pixels.
    """

    supports_images = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        adapters: Mapping[str | Operation, AdapterSource] | None = None,
        constrained: bool = True,
        name: str | None = None,
    ) -> None:
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ConfigError(f"{type(processor).__name__} has no tokenizer")
        self.processor = processor
        super().__init__(model, tokenizer, adapters=adapters, constrained=constrained, name=name,
                         prefix_cache=False, batch_generation=False)

    def _encode(self, request: GenerationRequest) -> Any:
        images = list(request.images)
        inputs = encode_vlm(self.processor, request.messages, images)
        dtype = getattr(self.model, "dtype", None)
        device = getattr(self.model, "device", None)
        if dtype is not None:
            inputs = inputs.to(device=device, dtype=dtype)  # floats only: pixel values
        return inputs

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "vision": True, "processor": type(self.processor).__name__}

    def __repr__(self) -> str:
        adapters = ",".join(op.value for op in self._adapters) or "none"
        return f"VLMBackbone({self.name!r}, adapters={adapters}, constrained={self.constrained})"


def is_vision_model(source: str | os.PathLike[str]) -> bool:
    """True when the model at ``source`` (directory or hub id) is an image-text-to-text model."""
    transformers = require("transformers", "hf")
    try:
        config = transformers.AutoConfig.from_pretrained(os.fspath(source))
    except (OSError, ValueError):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def load_vlm_backbone(
    model: str | os.PathLike[str],
    adapters: Mapping[str | Operation, AdapterSource] | None = None,
    *,
    dtype: Any,
    constrained: bool = True,
    device: str = "cpu",
) -> VLMBackbone:
    """Load an image-text-to-text model and its processor from a directory or hub id.

    Args:
        dtype: the torch dtype to load in.

    Raises:
        GeneratorError: the files cannot be read.
        ConfigError: the model is not an image-text-to-text model, or its processor needs a
            package that is missing (transformers 5 builds InternVL's and Qwen2-VL's processors
            with a video processor, which needs torchvision).
    """
    transformers = require("transformers", "hf")
    source = os.fspath(model)
    start = time.perf_counter()
    try:
        processor = transformers.AutoProcessor.from_pretrained(source)
        hf_model = transformers.AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise GeneratorError(f"cannot load vision model {source!r}: {exc}") from exc
    except (ValueError, ImportError) as exc:  # ImportError: e.g. InternVL's video processor without torchvision
        raise ConfigError(f"cannot load vision model {source!r}: {str(exc).strip()}") from exc
    hf_model = hf_model.to(device=device)
    backbone = VLMBackbone(hf_model, processor, adapters=adapters, constrained=constrained, name=source)
    logger.info("loaded vision model %s (%s) in %.1f s", source, dtype, time.perf_counter() - start)
    return backbone
