"""The vqa expert (MemLoRA-V) trained on a tiny real LLaVA: data, encoding, learning, resume, loading, CLI.

The photographs are real (scikit-image's sample images); the model has random weights
and a real processor, so the image-text code paths run as they do for InternVL3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine.backbone import VLMBackbone, encode_vlm, load_backbone  # noqa: E402
from memlora_engine.backbone.tiny import tiny_vlm  # noqa: E402
from memlora_engine.commands import main  # noqa: E402
from memlora_engine.errors import ConfigError, InvalidInputError  # noqa: E402
from memlora_engine.evaluation.vqa import ONE_WORD_HINT  # noqa: E402
from memlora_engine.generator import GenerationRequest  # noqa: E402
from memlora_engine.images import open_image  # noqa: E402
from memlora_engine.parsing import VQA_SCHEMA  # noqa: E402
from memlora_engine.prompts import VQA_PROMPT_VERSION, render_prompt  # noqa: E402
from memlora_engine.training import (  # noqa: E402
    DEFAULT_VQA_MODEL,
    LANGUAGE_MODEL_QV,
    EncodedExample,
    TrainConfig,
    benchmark_examples,
    collate,
    encode_record,
    read_card,
    train_adapter,
    vqa_prompt,
)
from memlora_engine.types import Operation  # noqa: E402

ANSWERS = {"astronaut": "flag", "coffee": "cup", "chelsea": "cat", "rocket": "rocket"}
QUESTIONS = ("What is in the photo?", "What object does the photo show?", "Name the main thing in the photo.")
ALL_LM_PROJECTIONS = r".*language_model\..*_proj"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real photographs saved as PNG (shrunk: the tiny processor works at 32 pixels anyway)."""
    root = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ANSWERS:
        image = Image.fromarray(getattr(skimage_data, name)()).convert("RGB")
        image.thumbnail((96, 96))
        paths[name] = root / f"{name}.png"
        image.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def records(photos) -> list[dict]:
    """Benchmark records (every field the benchmark file has): two train questions and one validation one per photo."""
    out = []
    for name, path in photos.items():
        for number, question in enumerate(QUESTIONS):
            out.append({
                "id": f"syn-1:D1:{number}:{name}", "conversation": "syn-1", "dia_id": f"D1:{number}",
                "split": "validation" if number == 2 else "train", "image": str(path),
                "url": f"http://example.invalid/{name}.png", "caption": f"a photo of a {ANSWERS[name]}",
                "speaker": "Ana", "turn_text": "Look!", "type": "object", "question": question,
                "answer": ANSWERS[name], "reason": f"The photo shows a {ANSWERS[name]}.", "teacher": "test-teacher",
            })
    return out


@pytest.fixture(scope="module")
def examples(records) -> dict[str, list[dict]]:
    converted = benchmark_examples(records)
    return {split: [e for e in converted if e["split"] == split] for split in ("train", "validation")}


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory) -> Path:
    """The tiny VLM saved as a model directory (what --model DIR loads)."""
    model, processor = tiny_vlm()
    path = tmp_path_factory.mktemp("tiny-vlm")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _config(**overrides) -> TrainConfig:
    values = dict(operation="vqa", model="tiny-vlm", learning_rate=1e-2, dropout=0.0, warmup_steps=2, batch_size=4,
                  max_steps=12, eval_every=4, val_examples=4, dtype="float32", patience=10)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, examples):
    """One short run on every projection of the language model (q/v alone learn slowly at hidden size 32)."""
    model, processor = tiny_vlm()
    run = tmp_path_factory.mktemp("vqa-run") / "run"
    result = train_adapter(_config(target_modules=ALL_LM_PROJECTIONS), examples["train"], examples["validation"], run,
                           model=model, tokenizer=processor, progress=False)
    return result, run


def test_benchmark_records_become_examples_with_the_evaluation_question(records, tmp_path):
    examples = benchmark_examples(records[:2])
    first = examples[0]
    assert first["operation"] == "vqa" and first["image"] == records[0]["image"]
    assert first["question"] == f"{records[0]['question']} {ONE_WORD_HINT}"  # as evaluate_vqa asks it
    assert json.loads(first["target"]) == {"answer": "flag", "reason": "The photo shows a flag."}
    assert first["target"] == '{"answer": "flag", "reason": "The photo shows a flag."}'  # the decoder's compact form
    assert benchmark_examples(records[:1], hint=None)[0]["question"] == records[0]["question"]
    assert benchmark_examples([dict(records[0], answer="  ")]) == []  # nothing to learn: skipped
    with pytest.raises(InvalidInputError, match="not found"):
        benchmark_examples([dict(records[0], image=str(tmp_path / "missing.png"))])


def test_training_example_is_the_inference_encoding(vlm_dir, examples):
    backbone = load_backbone(vlm_dir, adapters={}, dtype="float32", num_threads=1)
    assert isinstance(backbone, VLMBackbone)
    example = examples["train"][0]
    encoded = encode_record(backbone.processor, example)
    # What Memory.answer sends: the memlora VQA prompt and the stored photo, decoded by the engine.
    messages = render_prompt("memlora", Operation.VQA, question=example["question"].strip())
    assert vqa_prompt(example["question"]) == messages
    photo = open_image(Path(example["image"]).read_bytes())
    request = GenerationRequest(Operation.VQA, messages, json_schema=VQA_SCHEMA, images=(photo,))
    inference = backbone._encode(request)
    prompt = inference["input_ids"][0].tolist()
    assert prompt == encode_vlm(backbone.processor, messages, [photo])["input_ids"][0].tolist()
    assert list(encoded.input_ids[: len(prompt)]) == prompt
    assert len(encoded.input_ids) == len(prompt) + encoded.target_length
    target = encoded.input_ids[len(prompt):]
    assert target[-1] == backbone.tokenizer.eos_token_id
    assert backbone.tokenizer.decode(list(target[:-1])) == example["target"]
    features = encoded.features()
    assert set(features) == {"pixel_values"}
    assert torch.equal(features["pixel_values"], inference["pixel_values"])


def test_collate_right_pads_and_labels_the_targets_only(vlm_dir, examples):
    processor = load_backbone(vlm_dir, adapters={}, dtype="float32", num_threads=1).processor
    short = encode_record(processor, dict(examples["train"][0], target='{"answer": "x", "reason": ""}'))
    long = encode_record(processor, dict(examples["train"][1], question="A much longer question about the photo?"))
    assert len(short.input_ids) < len(long.input_ids)
    batch = collate(torch, [short, long], pad_id=0)
    assert "position_ids" not in batch and "keep" not in batch  # the model lays out its own positions
    assert batch["attention_mask"][0].tolist() == [1] * len(short.input_ids) + [0] * (
        len(long.input_ids) - len(short.input_ids))
    assert batch["pixel_values"].shape[0] == 2  # one image per row, concatenated along dim 0
    positions, labels = batch["logits_to_keep"], batch["labels"]
    assert labels.shape == (2, positions.shape[0])
    for row, example in enumerate((short, long)):
        kept = labels[row][labels[row] != -100].tolist()
        assert kept == list(example.input_ids[-example.target_length:])
        # the logit at position p is labelled with token p + 1
        for j in torch.nonzero(labels[row] != -100).flatten().tolist():
            assert labels[row, j].item() == example.input_ids[positions[j].item() + 1]


def test_collate_pads_per_token_processor_tensors():
    def features(prompt_length):
        return lambda: {"token_type_ids": torch.ones((1, prompt_length), dtype=torch.long),
                        "pixel_values": torch.zeros((1, 3, 4, 4))}

    a = EncodedExample((5, 6, 7, 8), 2, features(2))
    b = EncodedExample((5, 6, 7, 8, 9, 10), 1, features(5))
    batch = collate(torch, [a, b], pad_id=0)
    assert batch["token_type_ids"].tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]
    assert batch["pixel_values"].shape == (2, 3, 4, 4)
    odd = EncodedExample((5, 6, 7), 1, lambda: {"pixel_values": torch.zeros((1, 3, 8, 8))})
    with pytest.raises(ConfigError, match="batch-size 1"):
        collate(torch, [a, odd], pad_id=0)


def _tiny_internvl(transformers):
    config = transformers.InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           image_size=[28, 28], patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", **_SMALL_TEXT), image_token_id=5, image_seq_length=1)

    def example(tiles, words, target, seed):  # one image token per 28-pixel tile
        ids = [1] + [5] * tiles + list(range(10, 10 + words)) + list(range(50, 50 + target))
        pixels = torch.randn(tiles, 3, 28, 28, generator=torch.Generator().manual_seed(seed))
        return EncodedExample(tuple(ids), target, lambda: {"pixel_values": pixels})

    return config, [example(2, 3, 4, 0), example(3, 7, 2, 1)]


def _tiny_qwen2_vl(transformers):
    config = transformers.Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, spatial_merge_size=2, patch_size=14,
                           temporal_patch_size=2, in_channels=3),
        text_config=dict(**_SMALL_TEXT, rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        image_token_id=5, vision_start_token_id=6)

    def example(grid, words, target, seed):  # what Qwen2VLProcessor returns: patches, grid, per-token types
        patches = grid[0] * grid[1] * grid[2]
        ids = [1, 6] + [5] * (patches // 4) + list(range(10, 10 + words)) + list(range(50, 50 + target))
        types = torch.tensor([[int(i == 5) for i in ids[: len(ids) - target]]])
        pixels = torch.randn(patches, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(seed))
        return EncodedExample(tuple(ids), target, lambda: {"pixel_values": pixels, "image_grid_thw": torch.tensor([grid]),
                                                           "mm_token_type_ids": types})

    return config, [example((1, 4, 4), 3, 4, 0), example((1, 2, 4), 9, 2, 1)]


_SMALL_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=300)


@pytest.mark.parametrize("build", [_tiny_internvl, _tiny_qwen2_vl], ids=["internvl", "qwen2-vl"])
def test_right_padded_batches_score_like_single_examples(build):
    """Padding changes nothing: InternVL's tiles and Qwen2-VL's M-RoPE (positions from the processor's layout)."""
    import peft
    import transformers

    from memlora_engine.training.trainer import _loss

    config, pair = build(transformers)
    torch.manual_seed(0)
    model = transformers.AutoModelForImageTextToText.from_config(config)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=LANGUAGE_MODEL_QV, task_type="CAUSAL_LM"))
    model.eval()
    with torch.no_grad():
        batched, tokens = _loss(torch, model, collate(torch, pair, pad_id=0), False)
        alone = [_loss(torch, model, collate(torch, [example], pad_id=0), False) for example in pair]
    assert tokens == sum(n for _, n in alone) == 6
    assert batched.item() == pytest.approx(sum(loss.item() for loss, _ in alone), rel=1e-5)


def test_training_lowers_the_validation_loss_and_the_adapter_loads_as_vqa(trained, vlm_dir, photos):
    result, run = trained
    assert result.steps == 12 and result.stopped == "max steps"
    assert result.train_examples == 8 and result.val_examples == 4
    assert result.best_val_loss < result.base_val_loss - 0.1
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in log if "val_loss" in r]
    assert [r["step"] for r in log if "val_loss" in r] == [0, 4, 8, 12]
    assert val == sorted(val, reverse=True)  # falling at every evaluation
    assert {p.name for p in run.iterdir()} >= {"config.json", "log.jsonl", "loss.png", "checkpoint", "best",
                                                "result.json"}

    backbone = load_backbone(vlm_dir, adapters={"vqa": result.adapter_dir}, dtype="float32", num_threads=1,
                             constrained=False)
    assert isinstance(backbone, VLMBackbone) and backbone.has_adapter(Operation.VQA)
    assert not backbone.has_adapter(Operation.GENERATION)
    photo = open_image(photos["coffee"].read_bytes())
    request = GenerationRequest(Operation.VQA, vqa_prompt("What is in the photo?"), images=(photo,), max_new_tokens=6)
    base = load_backbone(vlm_dir, adapters={}, dtype="float32", num_threads=1, constrained=False)
    assert backbone.generate(request).text != base.generate(request).text


def test_default_vqa_adapter_targets_the_language_model_only_and_resumes(tmp_path, examples):
    config = _config(max_steps=6, eval_every=3)
    assert config.modules == LANGUAGE_MODEL_QV
    model, processor = tiny_vlm()
    with pytest.raises(TimeoutError, match="rerun to resume"):
        train_adapter(config, examples["train"], examples["validation"], tmp_path / "run", model=model,
                      tokenizer=processor, progress=False, max_seconds=0.0, finish_on_timeout=False)
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1
    lora = [name for name, _ in model.named_modules() if name.endswith("lora_A")]
    assert len(lora) == 4 and all(".language_model." in n and n.split(".")[-2] in ("q_proj", "v_proj") for n in lora)

    model, processor = tiny_vlm()  # a new process: a fresh base model
    result = train_adapter(config, examples["train"], examples["validation"], tmp_path / "run", model=model,
                           tokenizer=processor, progress=False)
    assert result.steps == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "train_loss" in r] == list(range(1, 7))  # continued at step 2, none twice


def test_vqa_needs_an_image_text_model(tmp_path, tiny, examples):
    model, tokenizer = tiny()
    with pytest.raises(ConfigError, match="image-text model"):
        train_adapter(_config(), examples["train"], examples["validation"], tmp_path / "run", model=model,
                      tokenizer=tokenizer, progress=False)


def test_target_modules_that_match_nothing_say_so(tmp_path, examples):
    model, processor = tiny_vlm()
    with pytest.raises(ConfigError, match=r"do not fit .*model\.language_model\.layers\.N\.self_attn\.q_proj"):
        train_adapter(_config(target_modules=r".*decoder\..*\.q_proj"), examples["train"], examples["validation"],
                      tmp_path / "run", model=model, tokenizer=processor, progress=False)


def test_vqa_config_defaults_and_older_run_directories(tmp_path):
    config = TrainConfig(operation="vqa")
    assert config.model == DEFAULT_VQA_MODEL and config.max_length == 4096 and config.device == "cpu"
    text = TrainConfig(operation="update")
    assert text.model == "gemma-3-270m" and text.max_length == 512
    # A run directory written before `device` existed still matches its configuration.
    run = tmp_path / "run"
    run.mkdir()
    saved = text.to_dict()
    del saved["device"]
    (run / "config.json").write_text(json.dumps(saved))
    (run / "result.json").write_text(json.dumps({
        "operation": "update", "run_dir": str(run), "adapter_dir": str(run / "best"), "steps": 3, "best_step": 3,
        "best_val_loss": 1.0, "base_val_loss": 2.0, "stopped_early": False, "stopped": "max steps", "seconds": 1.0,
        "train_examples": 1, "val_examples": 1, "skipped_too_long": 0, "config": saved}))
    assert train_adapter(text, [], [], run, progress=False).steps == 3


def _write_bench(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_trains_and_saves_a_carded_vqa_adapter(tmp_path, records, vlm_dir, capsys):
    bench = _write_bench(tmp_path / "vqa.jsonl", records)
    target = tmp_path / "adapters" / "vqa"
    assert main(["train", "vqa", "--bench", str(bench), "--model", str(vlm_dir), "--out", str(tmp_path / "runs"),
                 "--lr", "1e-2", "--max-steps", "2", "--eval-every", "1", "--batch-size", "2", "--val-examples", "2",
                 "--dtype", "float32", "--threads", "1", "--quiet", "--save-to", str(target)]) == 0
    assert "selected lr0.01-bs2" in capsys.readouterr().out
    card = read_card(target)
    assert card.operation == "vqa" and card.base_model == str(vlm_dir)
    assert card.prompt_style == "memlora" and card.prompt_version == VQA_PROMPT_VERSION
    assert card.data["source"] == "vqa.jsonl" and card.data["teacher"] == ["test-teacher"]
    assert card.data["train_split"] == "train" and card.data["validation_split"] == "validation"
    assert card.data["train_examples"] == 8 and card.data["question_hint"] == ONE_WORD_HINT
    assert card.hyperparameters["target_modules"] == LANGUAGE_MODEL_QV and card.hyperparameters["max_length"] == 4096
    assert card.validation["val_loss"] <= card.validation["base_val_loss"]
    backbone = load_backbone(vlm_dir, adapters={"vqa": target}, dtype="float32", num_threads=1)
    assert backbone.has_adapter(Operation.VQA)


def test_cli_vqa_without_a_usable_model_or_bench_fails_clearly(tmp_path, records, capsys):
    assert main(["train", "vqa", "--out", str(tmp_path / "a")]) == 2
    assert "--bench" in capsys.readouterr().err
    bench = _write_bench(tmp_path / "vqa.jsonl", records)
    # The default model is a hub id: with the hub off (tests) it cannot load, and says so.
    assert main(["train", "vqa", "--bench", str(bench), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert DEFAULT_VQA_MODEL in err and "image-text model" in err
