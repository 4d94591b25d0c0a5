"""Training examples as the model sees them: token ids, the target span, batches.

One layout per kind of backbone, each built by that backbone's own inference encoder,
so an adapter is trained on exactly the input it gets in the engine:

* causal LMs (:class:`~memlora_engine.backbone.HFBackbone`): the prompt rendered by
  the backbone's renderer; batches are left-padded with explicit position ids, so every
  row ends at the same position and only the last ``max target + 1`` positions go
  through the output projection (Gemma-3's 262k vocabulary makes full logits the
  largest tensor);
* image-text models (:class:`~memlora_engine.backbone.VLMBackbone`): the prompt and
  its images encoded by :func:`~memlora_engine.backbone.vlm.encode_vlm`; batches are
  right-padded *without* position ids (see :func:`collate`) and the processor's
  non-text tensors are concatenated along dim 0.

In both the target is the cleaned teacher text followed by EOS, and only its tokens
carry labels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memlora_engine.backbone._render import render_messages
from memlora_engine.errors import ConfigError, require
from memlora_engine.types import Operation

__all__ = ["EncodedExample", "collate", "encode_example", "encode_record", "encode_vlm_example", "is_processor",
           "record_inputs"]

_TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one example; the last ``target_length`` ids are the target (with EOS).

    Attributes:
        input_ids: prompt + target token ids.
        target_length: how many of the last ids are the target.
        features: image-text models only: returns the processor's other tensors for
            this example (``pixel_values``, ``image_grid_thw``, ...), re-encoded when a
            batch is built so the pixels of a whole data set are never held at once.
            ``None`` marks a causal-LM example (left-padded); a callable, an
            image-text one (right-padded).
    """

    input_ids: tuple[int, ...]
    target_length: int
    features: Callable[[], Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)


def is_processor(obj: Any) -> bool:
    """True for a transformers multimodal processor (an image-text model's), False for a tokenizer."""
    transformers = require("transformers", "hf")
    return isinstance(obj, transformers.ProcessorMixin)


def _target_ids(tokenizer: Any, target: str) -> list[int]:
    return list(tokenizer(target, add_special_tokens=False)["input_ids"]) + [int(tokenizer.eos_token_id)]


def encode_example(tokenizer: Any, messages: Sequence[dict[str, Any]], target: str) -> EncodedExample:
    """Tokenise prompt + target as :class:`~memlora_engine.backbone.HFBackbone` sees and produces them."""
    text, templated = render_messages(tokenizer, messages)
    prompt = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    answer = _target_ids(tokenizer, target)
    return EncodedExample(tuple(prompt) + tuple(answer), len(answer))


def _open(image: Any) -> Any:
    # A path is decoded the way the engine decodes a stored image (RGB, see
    # memlora_engine.images), so training and inference see the same pixels.
    if isinstance(image, (str, os.PathLike)):
        from memlora_engine.images import open_image

        return open_image(Path(image).read_bytes())
    return image


def encode_vlm_example(processor: Any, messages: Sequence[dict[str, Any]], images: Sequence[Any],
                       target: str) -> EncodedExample:
    """Encode prompt + images + target as :class:`~memlora_engine.backbone.VLMBackbone` sees and produces them.

    Args:
        processor: the model's ``AutoProcessor``.
        messages: the chat messages the engine sends (text content).
        images: PIL images or image files (decoded as the engine decodes stored images).
            Files are re-read for every batch; PIL images are held by the example.
        target: the cleaned teacher output.

    Returns:
        The example; its ``features`` re-run :func:`~memlora_engine.backbone.vlm.encode_vlm`
        and return every tensor except ``input_ids`` and ``attention_mask``.
    """
    from memlora_engine.backbone.vlm import encode_vlm

    sources = list(images)

    def encoded() -> Any:
        return encode_vlm(processor, messages, [_open(image) for image in sources])

    prompt = encoded()["input_ids"]
    if prompt.shape[0] != 1:
        raise ConfigError(f"the processor returned {prompt.shape[0]} rows for one prompt")

    def features() -> dict[str, Any]:
        return {key: value for key, value in encoded().items() if key not in _TEXT_KEYS}

    answer = _target_ids(processor.tokenizer, target)
    return EncodedExample(tuple(int(i) for i in prompt[0].tolist()) + tuple(answer), len(answer), features)


def record_inputs(record: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The ``(messages, images)`` a training record stands for.

    A ``vqa`` record (``image`` + ``question``, see :mod:`memlora_engine.training.vqa`)
    is rendered with the engine's VQA prompt; any other record carries its ``messages``
    (and optionally ``images``).
    """
    if record.get("operation") == Operation.VQA.value or "messages" not in record:
        from memlora_engine.training.vqa import vqa_prompt

        try:
            return vqa_prompt(record["question"]), [record["image"]]
        except KeyError as exc:
            raise ConfigError(f"vqa example {record.get('id')!r} lacks {exc}") from exc
    return list(record["messages"]), list(record.get("images") or ())


def encode_record(tokenizer: Any, record: Mapping[str, Any]) -> EncodedExample:
    """Encode a training record for a tokenizer (causal LM) or a processor (image-text model)."""
    if is_processor(tokenizer):
        messages, images = record_inputs(record)
        return encode_vlm_example(tokenizer, messages, images, record["target"])
    if record.get("operation") == Operation.VQA.value:
        raise ConfigError("a vqa example needs an image-text model (its processor), not a tokenizer")
    return encode_example(tokenizer, record["messages"], record["target"])


def _collate(torch: Any, batch: Sequence[EncodedExample], pad_id: int) -> dict[str, Any]:
    width = max(len(e.input_ids) for e in batch)
    keep = max(e.target_length for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), keep), -100, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, width - n :] = torch.tensor(example.input_ids)
        mask[row, width - n :] = 1
        labels[row, keep - example.target_length :] = torch.tensor(example.input_ids[n - example.target_length :])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels, "keep": keep}


def _collate_vlm(torch: Any, batch: Sequence[EncodedExample], pad_id: int) -> dict[str, Any]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    per_token: dict[str, Any] = {}
    stacked: dict[str, list[Any]] = {}
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        prompt = n - example.target_length
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, prompt:n] = ids[row, prompt:n]
        for key, value in (example.features() if example.features is not None else {}).items():
            if not hasattr(value, "shape"):
                continue  # lists of sizes and the like: the model does not take them
            if tuple(value.shape) == (1, prompt):  # per-token (token_type_ids, ...): text past the prompt
                if key not in per_token:
                    per_token[key] = torch.zeros((len(batch), width), dtype=value.dtype)
                per_token[key][row, :prompt] = value[0]
            else:
                stacked.setdefault(key, []).append(value)
    features: dict[str, Any] = dict(per_token)
    for key, values in stacked.items():
        try:
            features[key] = torch.cat(values, dim=0)
        except RuntimeError as exc:
            shapes = [tuple(v.shape) for v in values]
            raise ConfigError(f"cannot batch the processor's {key!r} (shapes {shapes}); train with --batch-size 1"
                              ) from exc
    # The logit at position p predicts token p + 1: keep the span of positions that
    # predict some row's target (one range for the batch; rows differ in length).
    first = min(len(e.input_ids) - e.target_length - 1 for e in batch)
    last = max(len(e.input_ids) - 1 for e in batch)
    return {"input_ids": ids, "attention_mask": mask, **features,
            "logits_to_keep": torch.arange(first, last), "labels": labels[:, first + 1 : last + 1]}


def collate(torch: Any, batch: Sequence[EncodedExample], pad_id: int) -> dict[str, Any]:
    """Model inputs + ``labels`` (aligned with the logits the inputs ask for) for one batch.

    Causal-LM examples are left-padded with explicit ``position_ids``; the batch holds
    ``keep`` (the logits of the last ``keep + 1`` positions are computed, the last one
    dropped). Image-text examples are right-padded *without* ``position_ids``: each
    row's tokens then sit at positions ``0..n-1``, which is what every model computes
    by itself -- including those whose rotary positions come from the processor's
    layout (Qwen2-VL's 3-D M-RoPE derives them from ``input_ids``, the image grid and
    the attention mask; explicit 1-D position ids would break it), while left padding
    without position ids would shift every padded row. Trailing padding is invisible to
    the real tokens under the causal mask. The batch holds ``logits_to_keep`` (the
    positions that predict a target token) instead of ``keep``.

    Non-text tensors are concatenated along dim 0: LLaVA-style ``(images, 3, H, W)``,
    InternVL's ``(tiles, 3, 448, 448)``, Qwen2-VL's ``(patches, dim)`` + ``image_grid_thw``
    all index images (or their tiles/patches) along dim 0, in prompt order, which the
    models match to the image tokens in order. A per-token tensor (shape ``(1, prompt
    length)``: Gemma-3's ``token_type_ids``, Qwen2-VL's ``mm_token_type_ids``) is padded
    like the ids, with zeros.
    Processors that pad pixels per call (SmolVLM's image splitting) can give shapes
    that do not concatenate: that raises ``ConfigError`` (train with batch size 1).
    """
    if not batch:
        raise ConfigError("an empty batch")
    if batch[0].features is None:
        return _collate(torch, batch, pad_id)
    return _collate_vlm(torch, batch, pad_id)
