"""Expert adapters in the layouts serving engines load: peft for vLLM/SGLang/LoRAX, GGUF LoRA for llama.cpp.

**peft** (:func:`export_peft`): ``adapter_model.safetensors`` as trained, and an
``adapter_config.json`` reduced to the fields every loader knows (peft 0.21 writes
keys older peft releases, as bundled by some servers, refuse). The target modules
are read from the tensors, and the export refuses what vLLM cannot serve:
DoRA, ``modules_to_save``, biases, per-module rank or alpha patterns, and modules
other than the attention and MLP projections (vLLM's Gemma 3 takes LoRA on
``qkv_proj`` = q/k/v, ``o_proj``, ``gate_up_proj`` = gate/up and ``down_proj``).

**GGUF** (:func:`export_gguf_lora`): llama.cpp's LoRA adapter file
(``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``,
tensors ``blk.N.<name>.weight.lora_a`` / ``.lora_b``), written with the ``gguf``
package llama.cpp publishes on PyPI; tensor names come from its own
``TensorNameMap``. llama.cpp's ``convert_lora_to_gguf.py`` does the same but is not
on PyPI (it lives in the llama.cpp repository and needs its ``convert_hf_to_gguf``).
Gemma 3 tensors need no reordering (no q/k permutation, unlike Llama).

Reads safetensors with the ``safetensors`` package and writes GGUF with ``gguf``
(both come with ``pip install "memlora[hf]"``).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError, require

__all__ = ["SERVABLE_MODULES", "export_gguf_lora", "export_peft", "export_shipped", "lora_tensors"]

SERVABLE_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
"""The Gemma 3 (and Llama-family) linear layers vLLM, SGLang and llama.cpp apply LoRA to."""

_KEY = re.compile(
    r"^base_model\.model\.model\.layers\.(?P<layer>\d+)\.(?P<block>self_attn|mlp)\."
    r"(?P<module>\w+)\.lora_(?P<part>[AB])\.weight$"
)

# Only what every loader reads; peft fills the rest with its defaults.
_CONFIG_KEYS = ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "bias", "fan_in_fan_out",
                "init_lora_weights", "use_rslora", "use_dora", "modules_to_save", "layers_to_transform",
                "layers_pattern", "rank_pattern", "alpha_pattern", "revision")


def _config(source: Path) -> dict[str, Any]:
    path = source / "adapter_config.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source} is not a peft adapter directory: {exc}") from exc


def lora_tensors(source: str | Path) -> dict[tuple[int, str, str], Any]:
    """``(layer, module, "A"|"B") -> float32 numpy array`` of the adapter in ``source``.

    Raises:
        ConfigError: a tensor that is not a LoRA A/B weight of a decoder layer's projection.
    """
    safetensors_numpy = require("safetensors.numpy", "hf")
    path = Path(source) / "adapter_model.safetensors"
    if not path.is_file():
        raise ConfigError(f"{source} has no adapter_model.safetensors")
    tensors: dict[tuple[int, str, str], Any] = {}
    for key, value in safetensors_numpy.load_file(str(path)).items():
        match = _KEY.match(key)
        if match is None:
            raise ConfigError(f"cannot export {source}: tensor {key!r} is not a decoder-layer LoRA weight")
        tensors[(int(match["layer"]), match["module"], match["part"])] = value.astype("float32")
    return tensors


def _check_servable(source: Path, config: Mapping[str, Any], modules: Iterable[str]) -> None:
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')!r} (LORA only)")
    if config.get("use_dora"):
        problems.append("DoRA")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save {config['modules_to_save']}")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("LoRA biases")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        problems.append("per-module rank_pattern/alpha_pattern")
    unknown = sorted(set(modules) - SERVABLE_MODULES)
    if unknown:
        problems.append(f"target modules {unknown} (servable: {sorted(SERVABLE_MODULES)})")
    if problems:
        raise ConfigError(f"{source} cannot be served by vLLM/SGLang/llama.cpp: {'; '.join(problems)}")


def export_peft(source: str | Path, out: str | Path, *, base_model: str | None = None) -> Path:
    """Write the adapter in ``source`` to directory ``out`` in the peft layout vLLM and SGLang load.

    Args:
        source: a peft LoRA adapter directory (``adapter_config.json``, ``adapter_model.safetensors``).
        out: the directory to write (created; existing files are replaced).
        base_model: ``base_model_name_or_path`` to record (default: the source's).

    Returns:
        ``out``.

    Raises:
        ConfigError: not an adapter, or one the serving engines cannot load as trained.
    """
    source, out = Path(source), Path(out)
    config = _config(source)
    modules = sorted({module for _, module, _ in lora_tensors(source)})
    _check_servable(source, config, modules)
    exported = {key: config[key] for key in _CONFIG_KEYS if key in config}
    exported.update(target_modules=modules, inference_mode=True,
                    base_model_name_or_path=base_model or config.get("base_model_name_or_path"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "adapter_model.safetensors", out / "adapter_model.safetensors")
    (out / "adapter_config.json").write_text(json.dumps(exported, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if (source / "card.json").is_file():
        shutil.copyfile(source / "card.json", out / "card.json")  # the prompt version the adapter needs
    return out


def export_gguf_lora(source: str | Path, out_file: str | Path, *, architecture: str = "gemma3",
                     name: str | None = None) -> Path:
    """Write the adapter in ``source`` as a llama.cpp GGUF LoRA file (float32 tensors).

    Args:
        source: a peft LoRA adapter directory.
        out_file: the ``.gguf`` file to write.
        architecture: llama.cpp's architecture name of the base model (``gemma3``).
        name: ``general.name`` (default: the source directory's name).

    Raises:
        ConfigError: not a servable adapter, or an architecture ``gguf`` does not know.
    """
    gguf = require("gguf", "hf")
    source, out_file = Path(source), Path(out_file)
    config = _config(source)
    tensors = lora_tensors(source)
    _check_servable(source, config, {module for _, module, _ in tensors})
    archs = {value: key for key, value in gguf.MODEL_ARCH_NAMES.items()}
    if architecture not in archs:
        raise ConfigError(f"unknown GGUF architecture {architecture!r}")
    blocks = 1 + max(layer for layer, _, _ in tensors)
    names = gguf.get_tensor_name_map(archs[architecture], blocks)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_file), architecture)
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    writer.add_name(name or source.name)
    for (layer, module, part), value in sorted(tensors.items()):
        block = "self_attn" if module in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        target = names.get_name(f"model.layers.{layer}.{block}.{module}.weight", try_suffixes=(".weight",))
        if target is None:
            raise ConfigError(f"gguf has no {architecture} tensor for layer {layer} {module}")
        # numpy (rank, in) / (out, rank) -> GGUF ne [in, rank] / [rank, out], as llama.cpp checks them.
        writer.add_tensor(f"{target}.lora_{part.lower()}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def export_shipped(model: str, out: str | Path, *, formats: Iterable[str] = ("peft",),
                   base_model: str | None = None) -> dict[str, list[Path]]:
    """Export every adapter shipped for ``model``: ``out/<operation>/`` (peft), ``out/<operation>.gguf`` (gguf).

    Also writes ``out/chat_template.jinja``: the prompt rendering of the in-process
    backbone for a model without a chat template (gemma-3-270m base), to pass to the
    server's ``--chat-template`` so the experts see the tokens they were trained on.

    Returns:
        format -> the paths written (``"chat_template"`` -> the template file).

    Raises:
        ConfigError: no adapter ships for ``model``, or an unknown format.
    """
    from memlora_engine.adapters import shipped_adapters

    wanted = list(formats)
    unknown = sorted(set(wanted) - {"peft", "gguf"})
    if unknown:
        raise ConfigError(f"unknown export format(s) {unknown}: peft, gguf")
    adapters = shipped_adapters(model)
    if not adapters:
        raise ConfigError(f"no adapters ship for {model!r}")
    from memlora_engine.backbone._render import PLAIN_CHAT_TEMPLATE

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template = out / "chat_template.jinja"
    template.write_text(PLAIN_CHAT_TEMPLATE + "\n", encoding="utf-8")
    written: dict[str, list[Path]] = {fmt: [] for fmt in wanted}
    written["chat_template"] = [template]
    for operation, source in sorted(adapters.items()):
        if "peft" in wanted:
            written["peft"].append(export_peft(source, out / operation, base_model=base_model))
        if "gguf" in wanted:
            written["gguf"].append(export_gguf_lora(source, out / f"{operation}.gguf", name=f"{model}-{operation}"))
    return written
