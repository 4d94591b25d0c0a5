"""LoRA training on a tiny in-process model: rendering, masking, learning, checkpoints, resume, loading."""

from __future__ import annotations

import json

import pytest

from memlora_engine.backbone._render import render_messages
from memlora_engine.prompts import render_prompt
from memlora_engine.training import TrainConfig, encode_example, search_stage, train_adapter
from memlora_engine.training.trainer import _collate
from memlora_engine.types import Operation


def _examples(n: int, offset: int = 0) -> list[dict]:
    out = []
    for i in range(offset, offset + n):
        messages = render_prompt("memlora", Operation.EXTRACTION, conversation=f"Ana: I like tea {i % 3}",
                                 date="2024-01-01")
        out.append({"messages": messages, "target": json.dumps({"facts": [f"Ana likes tea {i % 3}"]})})
    return out


def _config(**overrides) -> TrainConfig:
    values = dict(operation="extraction", learning_rate=1e-2, rank=16, dropout=0.0, warmup_steps=2, batch_size=4, max_steps=16, eval_every=4,
                  val_examples=6, max_length=4096, dtype="float32", target_modules="all-linear", patience=10)
    values.update(overrides)
    return TrainConfig(**values)


def test_encoding_matches_the_backbone_rendering(tiny):
    _, tokenizer = tiny()
    messages = _examples(1)[0]["messages"]
    example = encode_example(tokenizer, messages, '{"facts": []}')
    text, templated = render_messages(tokenizer, messages)
    prompt = tokenizer(text, add_special_tokens=not templated)["input_ids"]
    assert list(example.input_ids[: len(prompt)]) == prompt
    target = example.input_ids[len(prompt):]
    assert target[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(list(target[:-1])) == '{"facts": []}'
    assert example.target_length == len(target)


def test_collate_left_pads_and_masks_the_prompt(tiny):
    import torch

    _, tokenizer = tiny()
    short = encode_example(tokenizer, [{"role": "user", "content": "hi"}], "ab")
    long = encode_example(tokenizer, [{"role": "user", "content": "hello there"}], "abcd")
    batch = _collate(torch, [short, long], pad_id=0)
    assert batch["input_ids"].shape[1] == len(long.input_ids)
    pad = len(long.input_ids) - len(short.input_ids)
    assert batch["attention_mask"][0].tolist() == [0] * pad + [1] * len(short.input_ids)
    assert batch["position_ids"][0, -1].item() == len(short.input_ids) - 1
    assert batch["keep"] == long.target_length
    labels = batch["labels"]
    assert (labels[0] != -100).sum().item() == short.target_length  # prompt and padding are masked
    assert labels[1].tolist() == list(long.input_ids[-long.target_length:])


def test_training_lowers_the_validation_loss_and_saves_the_best_adapter(tmp_path, tiny):
    model, tokenizer = tiny()
    result = train_adapter(_config(), _examples(24), _examples(6, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False)
    assert result.steps == 16
    assert result.best_val_loss < result.base_val_loss - 0.25
    assert result.stopped == "max steps"
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "log.jsonl", "loss.png", "checkpoint", "best",
                                                "result.json"}
    assert (run / "best" / "adapter_model.safetensors").exists()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val_loss" in r] == [0, 4, 8, 12, 16]
    assert sum("train_loss" in r for r in log) == 16
    # a finished run is not retrained
    again = train_adapter(_config(), [], [], run, progress=False)
    assert again.best_val_loss == result.best_val_loss


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny):
    model, tokenizer = tiny()
    with pytest.raises(TimeoutError, match="rerun to resume"):
        train_adapter(_config(), _examples(24), _examples(6, 100), tmp_path / "run", model=model,
                      tokenizer=tokenizer, progress=False, max_seconds=0.0, finish_on_timeout=False)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1
    model, tokenizer = tiny()  # a new process: a fresh base model
    result = train_adapter(_config(), _examples(24), _examples(6, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False)
    assert result.steps == 16
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "train_loss" in r] == list(range(1, 17))  # no step twice
    with pytest.raises(ValueError, match="another configuration"):
        train_adapter(_config(learning_rate=1e-3), _examples(4), _examples(2), tmp_path / "run", model=model,
                      tokenizer=tokenizer, progress=False)


def test_a_warm_start_begins_where_the_saved_adapter_ended(tmp_path, tiny):
    model, tokenizer = tiny()
    first = train_adapter(_config(), _examples(24), _examples(6, 100), tmp_path / "first", model=model,
                          tokenizer=tokenizer, progress=False)
    model, tokenizer = tiny()  # a fresh base model, as in a new process
    warm = train_adapter(_config(init_adapter=str(tmp_path / "first" / "best"), seed=1, max_steps=4, eval_every=4),
                         _examples(24), _examples(6, 100), tmp_path / "warm", model=model, tokenizer=tokenizer,
                         progress=False)
    # Step 0 is scored before any update: it is the saved adapter's loss, not the base model's.
    assert warm.base_val_loss == pytest.approx(first.best_val_loss, rel=1e-4)
    assert warm.base_val_loss < first.base_val_loss - 0.25


def test_a_warm_start_from_an_adapter_of_another_shape_is_refused(tmp_path, tiny):
    model, tokenizer = tiny()
    train_adapter(_config(max_steps=1, eval_every=1), _examples(4), _examples(2, 100), tmp_path / "r16", model=model,
                  tokenizer=tokenizer, progress=False)
    model, tokenizer = tiny()
    with pytest.raises(ValueError, match="does not fit this run"):
        train_adapter(_config(rank=8, init_adapter=str(tmp_path / "r16" / "best")), _examples(4), _examples(2, 100),
                      tmp_path / "r8", model=model, tokenizer=tokenizer, progress=False)
    model, tokenizer = tiny()
    with pytest.raises(ValueError, match="does not fit this run"):
        train_adapter(_config(target_modules=["q_proj", "v_proj"], init_adapter=str(tmp_path / "r16" / "best")),
                      _examples(4), _examples(2, 100), tmp_path / "qv", model=model, tokenizer=tokenizer, progress=False)
    model, tokenizer = tiny()
    with pytest.raises(ValueError, match="no adapter_model.safetensors"):
        train_adapter(_config(init_adapter=str(tmp_path)), _examples(4), _examples(2, 100), tmp_path / "none",
                      model=model, tokenizer=tokenizer, progress=False)


def test_early_stopping(tmp_path, tiny):
    model, tokenizer = tiny()
    config = _config(learning_rate=1e-9, max_steps=40, eval_every=2, patience=2, warmup_steps=1)
    result = train_adapter(config, _examples(24), _examples(6, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False)
    assert result.stopped_early and result.stopped == "early stopping" and result.steps < 40


def _poison(model, tokenizer, text: str) -> None:
    """Make every sequence holding ``text``'s first token compute NaN (its embedding row is NaN)."""
    import torch

    token = tokenizer(text, add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        model.get_input_embeddings().weight[token] = float("nan")


def test_a_step_with_non_finite_gradients_is_skipped_not_applied(tmp_path, tiny):
    import torch
    from safetensors.torch import load_file

    model, tokenizer = tiny()
    _poison(model, tokenizer, "Q")
    poisoned = [{**e, "messages": [{**m, "content": m["content"].replace("Ana", "Qna")} for m in e["messages"]]}
                for e in _examples(4)]
    result = train_adapter(_config(), _examples(20) + poisoned, _examples(6, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    skipped = [r["step"] for r in log if r.get("skipped") == "non-finite"]
    assert 0 < len(skipped) < 16 and result.skipped_steps == len(skipped)
    assert all(r["train_loss"] != r["train_loss"] for r in log if r.get("skipped"))  # their loss was NaN
    for name in ("best", "checkpoint/adapter"):
        weights = load_file(tmp_path / "run" / name / "adapter_model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values()), name
    assert result.best_val_loss < result.base_val_loss - 0.25  # the clean batches still trained it


def test_a_run_whose_gradients_stay_non_finite_stops(tmp_path, tiny):
    from memlora_engine.errors import GeneratorError
    from memlora_engine.training.trainer import MAX_NONFINITE_IN_A_ROW

    model, tokenizer = tiny()
    _poison(model, tokenizer, "A")  # every example speaks as "Ana"
    with pytest.raises(GeneratorError, match="training diverged"):
        train_adapter(_config(max_steps=MAX_NONFINITE_IN_A_ROW + 5), _examples(8), _examples(4, 100),
                      tmp_path / "run", model=model, tokenizer=tokenizer, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "train_loss" in r] == list(range(1, MAX_NONFINITE_IN_A_ROW + 1))


def test_time_budget_finishes_with_the_best_so_far(tmp_path, tiny):
    model, tokenizer = tiny()
    result = train_adapter(_config(), _examples(8), _examples(4, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False, max_seconds=0.0)
    assert result.stopped == "time budget" and result.steps == 1
    assert (tmp_path / "run" / "best" / "adapter_model.safetensors").exists()


def test_trained_adapter_loads_in_the_backbone_and_changes_its_output(tmp_path, tiny):
    from memlora_engine.backbone import HFBackbone
    from memlora_engine.generator import GenerationRequest

    model, tokenizer = tiny()
    result = train_adapter(_config(max_steps=24), _examples(24), _examples(6, 100), tmp_path / "run", model=model,
                           tokenizer=tokenizer, progress=False)
    base, tokenizer = tiny()
    backbone = HFBackbone(base, tokenizer, adapters={"extraction": result.adapter_dir}, constrained=False)
    assert backbone.has_adapter(Operation.EXTRACTION)
    request = GenerationRequest(Operation.EXTRACTION, _examples(1)[0]["messages"], max_new_tokens=8)
    with_adapter = backbone.generate(request).text
    plain = HFBackbone(tiny()[0], tokenizer, constrained=False).generate(request).text
    assert with_adapter != plain


def test_search_stage_picks_by_outer_metric_then_val_loss(tmp_path, tiny):
    calls = []

    def outer(operation, adapter_dir):
        calls.append(adapter_dir)
        return {"metric": 1.0 if "lr0.001" in adapter_dir else 0.5}

    summary = search_stage(_config(max_steps=4, eval_every=2), [5e-3, 1e-3], [4], _examples(16), _examples(4, 100),
                           tmp_path / "search", outer=outer, model_factory=tiny, progress=False)
    assert summary["best"] == "lr0.001-bs4"
    assert [r["candidate"] for r in summary["candidates"]] == ["lr0.005-bs4", "lr0.001-bs4"]
    assert json.loads((tmp_path / "search" / "search.json").read_text())["best"] == "lr0.001-bs4"
    # resumed: training and the outer tier are cached
    again = search_stage(_config(max_steps=4, eval_every=2), [5e-3, 1e-3], [4], [], [], tmp_path / "search",
                         outer=outer, model_factory=tiny, progress=False)
    assert again["best"] == "lr0.001-bs4" and len(calls) == 2
    no_outer = search_stage(_config(max_steps=4, eval_every=2), [5e-3, 1e-3], [4], [], [], tmp_path / "search",
                            model_factory=tiny, progress=False)
    best = min(no_outer["candidates"], key=lambda r: r["best_val_loss"])
    assert no_outer["best"] == best["candidate"]


def test_max_empty_share_thins_the_training_set_only(tmp_path, tiny):
    model, tokenizer = tiny()
    empty = [dict(e, target='{"facts": []}') for e in _examples(12, 200)]
    result = train_adapter(_config(max_steps=1, max_empty_share=0.2), _examples(12) + empty, empty[:6],
                           tmp_path / "run", model=model, tokenizer=tokenizer, progress=False)
    assert result.train_examples == 15  # 12 with facts + 3 empty
    assert result.val_examples == 6  # validation keeps its natural mix
    assert result.config["max_empty_share"] == 0.2
