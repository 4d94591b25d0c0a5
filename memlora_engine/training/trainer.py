"""LoRA training of one operation's expert (the paper's Algorithm B1 inner loop).

* Inputs are encoded exactly as the backbone encodes them at inference
  (:mod:`memlora_engine.training.encoding`): a causal LM's prompt through the
  backbone's renderer, an image-text model's prompt and images through
  :func:`~memlora_engine.backbone.vlm.encode_vlm`. The target is the cleaned teacher
  answer followed by EOS; the loss covers target tokens only, and only the logits of
  the positions that predict them are computed.
* The model comes from ``config.model`` through
  :func:`~memlora_engine.backbone.load_backbone`: a causal LM with its tokenizer, or an
  image-text model with its processor (always for ``vqa``). Everything below is the
  same for both.
* peft LoRA from peft's default init (B = 0: the adapter starts as the base model),
  AdamW, linear warm-up then linear decay, gradient clipping. A step whose gradients
  are not finite (a NaN or infinite loss) is skipped, logged and counted
  (``skipped_steps``), never applied; ``MAX_NONFINITE_IN_A_ROW`` of them in a row stop
  the run with :class:`~memlora_engine.errors.GeneratorError`.
* Every ``eval_every`` steps: the validation teacher-forcing loss, a checkpoint
  (adapter, optimizer, step, RNG) for resuming, the best adapter so far, the loss log
  (``log.jsonl``) and its curve (``loss.png``). Early stopping after ``patience``
  evaluations without improvement.

A run directory holds ``config.json``, ``log.jsonl``, ``loss.png``, ``checkpoint/``,
``best/`` (the adapter to ship) and, once finished, ``result.json``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memlora_engine.errors import ConfigError, GeneratorError, require
from memlora_engine.training.config import TrainConfig
from memlora_engine.training.data import cap_empty_share
from memlora_engine.training.encoding import (  # noqa: F401  (_collate: the causal-LM layout, tested directly)
    EncodedExample,
    _collate,
    collate,
    encode_example,
    encode_record,
    is_processor,
)

__all__ = ["EncodedExample", "TrainResult", "encode_example", "evaluate_loss", "plot_log", "train_adapter"]

logger = logging.getLogger(__name__)

MAX_NONFINITE_IN_A_ROW = 10
"""Consecutive steps with non-finite gradients after which a run stops (it has diverged)."""


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``result.json``)."""

    operation: str
    run_dir: str
    adapter_dir: str
    steps: int
    best_step: int
    best_val_loss: float
    base_val_loss: float
    stopped_early: bool
    stopped: str
    seconds: float
    train_examples: int
    val_examples: int
    skipped_too_long: int
    config: dict[str, Any]
    skipped_steps: int = 0  # optimizer steps skipped for non-finite gradients (absent in older result.json)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loss(torch: Any, model: Any, batch: dict[str, Any], autocast: bool) -> tuple[Any, int]:
    """Summed target-token cross-entropy and the token count (for either layout of :func:`collate`)."""
    inputs = {key: value for key, value in batch.items() if key not in ("labels", "keep")}
    trim = "keep" in batch
    if trim:  # left-padded: the last keep + 1 positions, the very last predicting past the end
        inputs["logits_to_keep"] = batch["keep"] + 1
    device = next(model.parameters()).device
    dtype = getattr(model, "dtype", None)
    for key, value in inputs.items():
        if hasattr(value, "to"):
            # Pixel values follow the weights (a bfloat16 vision tower rejects float32 input).
            inputs[key] = value.to(device=device, dtype=dtype) if value.is_floating_point() and dtype else value.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(**inputs, use_cache=False)
    logits = (out.logits[:, :-1, :] if trim else out.logits).float()  # position t predicts token t + 1
    labels = batch["labels"].to(device)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, int((labels != -100).sum())


def evaluate_loss(model: Any, examples: Sequence[EncodedExample], pad_id: int, *, batch_size: int = 4,
                  autocast: bool = False) -> float:
    """Mean teacher-forcing loss per target token (model switched to eval for the duration)."""
    torch = require("torch", "hf")
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            loss, n = _loss(torch, model, collate(torch, examples[start : start + batch_size], pad_id), autocast)
            total, tokens = total + float(loss), tokens + n
    model.train(was_training)
    return total / max(tokens, 1)


def _order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of one epoch: shuffled, length-bucketed (less padding), deterministic in (seed, epoch)."""
    rng = random.Random(seed * 1000 + epoch)
    indices = list(range(len(lengths)))
    rng.shuffle(indices)
    chunk = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(indices), chunk):
        part = sorted(indices[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return [b for b in batches if len(b) == batch_size] or batches


def _batch_at(step: int, lengths: Sequence[int], batch_size: int, seed: int) -> list[int]:
    per_epoch = len(_order(lengths, batch_size, seed, 0))
    epoch, index = divmod(step, per_epoch)
    return _order(lengths, batch_size, seed, epoch)[index]


def plot_log(log_path: str | Path, png_path: str | Path, title: str) -> None:
    """Draw train (per step, smoothed) and validation losses from ``log.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, alpha=0.35, label="train (per step)")
        window = 5
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                  for i in range(len(losses))]
        ax.plot(steps, smooth, label=f"train (mean of {window})")
    if val:
        steps, losses = zip(*val)
        ax.plot(steps, losses, marker="o", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per target token")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def _atomic_dir(target: Path, write: Any) -> None:
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def _load_model(config: TrainConfig) -> tuple[Any, Any]:
    """The base model and its tokenizer, or for an image-text model its processor."""
    from memlora_engine.backbone import VLMBackbone, load_backbone

    vqa = config.operation == "vqa"
    try:
        # adapters={}: the bare base model, also once shipped adapters load by default.
        backbone = load_backbone(config.model, adapters={}, dtype=config.dtype, num_threads=config.num_threads,
                                 constrained=False, device=config.device, vision=True if vqa else None,
                                 runtime="transformers")  # training runs on torch
    except (ConfigError, GeneratorError) as exc:
        if vqa:
            raise type(exc)(f"{exc}\n(the vqa adapter trains on an image-text model: pass --model a local model "
                            "directory, or a hub id with hub access)") from exc
        raise
    if isinstance(backbone, VLMBackbone):
        return backbone.model, backbone.processor
    return backbone.model, backbone.tokenizer


def _tokenizer_of(tokenizer: Any) -> Any:
    return tokenizer.tokenizer if is_processor(tokenizer) else tokenizer


def _lora_model(peft: Any, model: Any, config: TrainConfig) -> Any:
    lora = peft.LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                           target_modules=config.modules, task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, lora)
    except ValueError as exc:  # no module matched target_modules
        # One line per kind of projection ("layers.N."), vision tower and language model alike.
        kinds = dict.fromkeys(re.sub(r"\.\d+\.", ".N.", name) for name, _ in model.named_modules()
                              if name.endswith(("q_proj", "v_proj")))
        raise ConfigError(f"LoRA target modules {config.modules!r} do not fit {config.model}: {exc} "
                          f"(its attention projections: {', '.join(kinds) or 'none named q_proj/v_proj'})") from exc


def train_adapter(
    config: TrainConfig,
    train_examples: Sequence[dict[str, Any]],
    val_examples: Sequence[dict[str, Any]],
    run_dir: str | Path,
    *,
    model: Any = None,
    tokenizer: Any = None,
    progress: bool = True,
    max_seconds: float | None = None,
    finish_on_timeout: bool = True,
) -> TrainResult:
    """Train (or resume) one LoRA adapter; the best one by validation loss ends in ``run_dir/best``.

    Args:
        config: hyperparameters (see :class:`TrainConfig`).
        train_examples, val_examples: records from :func:`~memlora_engine.training.data.load_examples`
            (``messages`` + ``target``), or ``vqa`` records (``image`` + ``question`` + ``target``,
            :func:`~memlora_engine.training.vqa.benchmark_examples`).
        model, tokenizer: the base model to train on and its tokenizer -- or, for an
            image-text model, its processor (a fresh copy is not made: the model is
            wrapped by peft in place); loaded from ``config.model`` when omitted.
        max_seconds: a wall-clock budget for this call's training. When it runs out the
            validation loss is measured and a checkpoint written; then the run finishes with
            what it has (``finish_on_timeout``, the result says ``stopped="time budget"``) or
            raises ``TimeoutError`` so that a rerun resumes it.

    Returns the result; a finished run (``result.json`` exists) returns it without training.

    Raises:
        ConfigError: ``run_dir`` holds a run with another configuration, nothing fits
            ``max_length``, a ``vqa`` run on a text-only model, or target modules that
            match nothing.
    """
    torch = require("torch", "hf")
    peft = require("peft", "hf")
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / "result.json"
    config_path = out / "config.json"
    if config_path.exists():
        # Through TrainConfig: a run written before a field existed compares with its default.
        saved = json.loads(json.dumps(TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
                                      .to_dict()))
        if saved != json.loads(json.dumps(config.to_dict())):
            raise ConfigError(f"{out} holds a run with another configuration; use another directory")
    else:
        config.save(config_path)
    if result_path.exists():
        return TrainResult(**json.loads(result_path.read_text(encoding="utf-8")))
    if model is None or tokenizer is None:
        model, tokenizer = _load_model(config)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.operation == "vqa" and not is_processor(tokenizer):
        raise ConfigError(f"the vqa adapter trains on an image-text model; {config.model} is text-only")
    text_tokenizer = _tokenizer_of(tokenizer)
    pad_id = int(text_tokenizer.pad_token_id if text_tokenizer.pad_token_id is not None
                 else text_tokenizer.eos_token_id)

    def encode(records: Sequence[dict[str, Any]]) -> tuple[list[EncodedExample], int]:
        kept, skipped = [], 0
        for record in records:
            example = encode_record(tokenizer, record)
            if len(example.input_ids) > config.max_length:
                skipped += 1
            else:
                kept.append(example)
        return kept, skipped

    if config.max_empty_share is not None:
        train_examples = cap_empty_share(train_examples, config.max_empty_share, config.seed)
    train_set, skipped = encode(train_examples)
    rng = random.Random(config.seed)
    val_pool = list(val_examples)
    rng.shuffle(val_pool)
    val_set, _ = encode(val_pool)
    val_set = sorted(val_set[: config.val_examples], key=lambda e: len(e.input_ids))
    if not train_set or not val_set:
        raise ConfigError(f"nothing to train on: {len(train_set)} train / {len(val_set)} validation examples fit "
                          f"max_length={config.max_length}")
    lengths = [len(e.input_ids) for e in train_set]

    torch.manual_seed(config.seed)
    model = _lora_model(peft, model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.learning_rate * (step + 1) / config.warmup_steps
        span = max(1, config.max_steps - config.warmup_steps)
        return config.learning_rate * (1.0 - 0.9 * min(1.0, (step - config.warmup_steps) / span))

    log_path = out / "log.jsonl"
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"step": 0, "best_val_loss": math.inf, "best_step": 0, "bad_evals": 0,
                             "base_val_loss": None, "seconds": 0.0, "skipped_steps": 0, "nonfinite_in_a_row": 0}
    if (ckpt / "state.json").exists():
        # Over the defaults: a checkpoint written before a key existed resumes with its default.
        state.update(json.loads((ckpt / "state.json").read_text(encoding="utf-8")))
        peft.set_peft_model_state_dict(model, _read_adapter_weights(ckpt / "adapter"))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        torch.set_rng_state(torch.load(ckpt / "rng.pt", weights_only=True))
        # Drop log lines written after the checkpoint: that work is redone.
        if log_path.exists():
            lines = [line for line in log_path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and json.loads(line)["step"] <= state["step"]]
            log_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        logger.info("resumed %s at step %d", out, state["step"])
    else:
        if log_path.exists():
            log_path.unlink()
        if config.init_adapter:
            _warm_start(peft, model, Path(config.init_adapter))

    def log(record: dict[str, Any]) -> None:
        with log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def checkpoint() -> None:
        def write(tmp: Path) -> None:
            model.save_pretrained(tmp / "adapter")
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(torch.get_rng_state(), tmp / "rng.pt")
            (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")

        _atomic_dir(ckpt, write)
        plot_log(log_path, out / "loss.png", f"{config.operation} (lr {config.learning_rate:g}, bs {config.batch_size})")

    if state["base_val_loss"] is None:
        base = evaluate_loss(model, val_set, pad_id, batch_size=config.batch_size, autocast=config.autocast)
        state["base_val_loss"] = base
        log({"step": 0, "val_loss": base})
        logger.info("%s: base validation loss %.4f", config.operation, base)

    from tqdm.auto import tqdm

    model.train()
    started = time.perf_counter()
    bar = tqdm(total=config.max_steps, initial=state["step"], desc=f"train {config.operation}", file=sys.stderr,
               disable=not progress)
    stopped = "max steps"
    try:
        while state["step"] < config.max_steps:
            step = state["step"]
            indices = _batch_at(step, lengths, config.batch_size, config.seed)
            batch = collate(torch, [train_set[i] for i in indices], pad_id)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            t0 = time.perf_counter()
            loss_sum, tokens = _loss(torch, model, batch, config.autocast)
            loss = loss_sum / max(tokens, 1)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            # A NaN loss makes every gradient NaN, and one applied step makes every LoRA weight NaN for
            # good: on an H200 with bf16 autocast (session 19) each of six runs hit such a batch between
            # steps 27 and 320 and saved NaN adapters from then on. Skip the step instead; a run whose
            # gradients stay non-finite has diverged and stops.
            finite = bool(torch.isfinite(grad_norm))
            if finite:
                optimizer.step()
                state["nonfinite_in_a_row"] = 0
            else:
                state["skipped_steps"] += 1
                state["nonfinite_in_a_row"] += 1
            optimizer.zero_grad(set_to_none=True)
            state["step"] = step + 1
            state["seconds"] += time.perf_counter() - t0
            log({"step": state["step"], "train_loss": loss.item(), "lr": lr_at(step), "tokens": tokens,
                 "seconds": round(time.perf_counter() - t0, 3), **({} if finite else {"skipped": "non-finite"})})
            if state["nonfinite_in_a_row"] >= MAX_NONFINITE_IN_A_ROW:
                raise GeneratorError(f"training diverged: {MAX_NONFINITE_IN_A_ROW} steps in a row up to step "
                                     f"{state['step']} had non-finite gradients (try a lower learning rate, or "
                                     "autocast off); the last checkpoint holds the weights before them")
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            timed_out = max_seconds is not None and time.perf_counter() - started > max_seconds
            if state["step"] % config.eval_every == 0 or state["step"] == config.max_steps or timed_out:
                val = evaluate_loss(model, val_set, pad_id, batch_size=config.batch_size, autocast=config.autocast)
                log({"step": state["step"], "val_loss": val})
                bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.3f}")
                if val < state["best_val_loss"]:
                    state.update(best_val_loss=val, best_step=state["step"], bad_evals=0)
                    _atomic_dir(out / "best", lambda tmp: model.save_pretrained(tmp))
                else:
                    state["bad_evals"] += 1
                checkpoint()
                if state["bad_evals"] >= config.patience:
                    stopped = "early stopping"
                    break
                if timed_out:
                    if finish_on_timeout:
                        stopped = "time budget"
                        break
                    raise TimeoutError(f"stopped after {max_seconds} s at step {state['step']}; rerun to resume")
    finally:
        bar.close()
    result = TrainResult(
        operation=config.operation, run_dir=str(out), adapter_dir=str(out / "best"), steps=state["step"],
        best_step=state["best_step"], best_val_loss=state["best_val_loss"], base_val_loss=state["base_val_loss"],
        stopped_early=stopped == "early stopping", stopped=stopped, seconds=round(state["seconds"], 1), train_examples=len(train_set),
        val_examples=len(val_set), skipped_too_long=skipped, config=config.to_dict(),
        skipped_steps=state["skipped_steps"],
    )
    plot_log(log_path, out / "loss.png", f"{config.operation} (lr {config.learning_rate:g}, bs {config.batch_size})")
    result_path.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    return result


def _warm_start(peft: Any, model: Any, directory: Path) -> None:
    """Load a saved adapter's weights into the fresh LoRA model; every LoRA weight must be set."""
    if not (directory / "adapter_model.safetensors").is_file():
        raise ConfigError(f"init_adapter {directory} holds no adapter_model.safetensors")
    unfit = f"init_adapter {directory} does not fit this run (rank, target modules, base model)"
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    try:
        result = peft.set_peft_model_state_dict(model, _read_adapter_weights(directory))
    except RuntimeError as exc:  # torch's size mismatch: another rank or base model
        raise ConfigError(f"{unfit}: {str(exc).splitlines()[-1].strip()}") from exc
    # peft reports the model's keys the file did not set; a LoRA weight among them means
    # other target modules.
    missing = sorted(key for key in result.missing_keys if key in expected)
    if missing or result.unexpected_keys:
        raise ConfigError(f"{unfit}: {len(missing)} LoRA weights not in the file (e.g. {missing[:1]}), "
                          f"{len(result.unexpected_keys)} file weights not in the model "
                          f"(e.g. {list(result.unexpected_keys)[:1]})")


def _read_adapter_weights(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))
