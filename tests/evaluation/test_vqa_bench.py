"""The VQA extension benchmark: image cache, builder, V, LoCoMo ingestion with photos, evaluation.

Photos are real (scikit-image's bundled astronaut, coffee, chelsea, camera); the
LoCoMo conversations are the synthetic ones of ``conftest.py`` with photo turns
added; the teacher is scripted; downloads go to a loopback ``http.server``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from memlora_engine import Memory, MemoryConfig
from memlora_engine.commands import eval as eval_cli
from memlora_engine.data import image_cache
from memlora_engine.data.image_cache import fetch_images, resolve_image, url_key
from memlora_engine.errors import ConfigError, InvalidInputError
from memlora_engine.evaluation import (
    RunOptions,
    evaluate_locomo,
    load_locomo,
    parse_config,
    run_config,
    vqa,
)
from memlora_engine.evaluation.vqa import (
    build_vqa_benchmark,
    evaluate_vqa,
    load_vqa_benchmark,
    question_messages,
    score_v,
)
from memlora_engine.testing import DeterministicEmbedder, ScriptedGenerator
from memlora_engine.types import Operation

SPLITS = {"train": ["syn-1"], "validation": ["syn-2"], "test": ["syn-3"]}
SHARED = "http://example.invalid/a.jpg"  # the conftest sample's photo turn: in every conversation


def _png(name: str, size: int = 64) -> bytes:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return {name: _png(name) for name in ("astronaut", "coffee", "chelsea", "camera")}


def _photo_turn(session: int, number: int, speaker: str, url: str, caption: str) -> dict[str, Any]:
    return {"speaker": speaker, "dia_id": f"D{session}:{number}", "text": f"Look at this ({number}).",
            "img_url": [url], "blip_caption": caption}


def _conversation(make_sample: Any, sample_id: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
    sample = make_sample(sample_id)
    for turn in turns:
        session = sample["conversation"][f"session_{turn['dia_id'][1]}"]
        session.append(turn)
    return sample


# The photos, in file order (the question type rotates over this order: object, color, count, ...):
#   syn-1  D1:3 shared URL (dropped)  D2:4 astronaut  D3:3 coffee (same bytes as syn-2's: dropped)
#   syn-2  D1:3 shared URL (dropped)  D2:4 chelsea    D3:3 coffee copy (dropped)
#   syn-3  D1:3 shared URL (dropped)  D2:4 not cached (skipped)  D3:3 camera  D3:4 by basename
@pytest.fixture
def locomo(tmp_path: Path, make_sample: Any, photos: dict[str, bytes]) -> tuple[Path, Path]:
    samples = [
        _conversation(make_sample, "syn-1", [
            _photo_turn(2, 4, "Ben", "http://img.test/train/astronaut.png", "a photo of an astronaut with a red flag"),
            _photo_turn(3, 3, "Ben", "http://img.test/train/coffee.png", "a cup of coffee"),
        ]),
        _conversation(make_sample, "syn-2", [
            _photo_turn(2, 4, "Ben", "http://img.test/val/chelsea.png", "a cat on a table"),
            _photo_turn(3, 3, "Ana", "http://img.test/val/copy.png", "coffee"),
        ]),
        _conversation(make_sample, "syn-3", [
            _photo_turn(2, 4, "Ben", "http://img.test/test/missing.png", "a rocket"),
            _photo_turn(3, 3, "Ana", "http://img.test/test/camera.png", "a man with a camera"),
            _photo_turn(3, 4, "Ben", "http://img.test/test/my%20photo.png?size=large", "an astronaut"),
        ]),
    ]
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps(samples), encoding="utf-8")
    images = tmp_path / "images"
    images.mkdir()
    for url, name in [("http://img.test/train/astronaut.png", "astronaut"), ("http://img.test/train/coffee.png", "coffee"),
                      ("http://img.test/val/chelsea.png", "chelsea"), ("http://img.test/val/copy.png", "coffee"),
                      ("http://img.test/test/camera.png", "camera")]:
        (images / f"{url_key(url)}.png").write_bytes(photos[name])
    (images / "my photo.png").write_bytes(photos["astronaut"][:-1] + b"\x00")  # other bytes than syn-1's
    return data, images


class ScriptedTeacher:
    """Answers in call order; records the question type each prompt asked for."""

    name = "scripted-vlm"

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = list(outputs)
        self.types: list[str] = []

    def complete(self, messages: list[dict[str, Any]], *, operation: Operation, json_schema: Any = None,
                 max_new_tokens: int = 1024) -> str:
        assert operation is Operation.VQA and json_schema is vqa.QUESTION_SCHEMA
        parts = messages[-1]["content"]
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        self.types.append(parts[1]["text"].split("Question type: ", 1)[1].split(".", 1)[0])
        if not self.outputs:
            raise AssertionError("the teacher was asked again")
        return self.outputs.pop(0)


TEACHER_OUTPUTS = [
    '{"question": "In the photo, what colour is the flag?", "answer": "Red.", "reason": "On the sleeve."}',
    '```json\n{"question": "In the photo, how many cats?", "answer": "two cats", "reason": "x"}\n```',
    '<think>count them</think>{"question": "How many people are in the photo?", "answer": 1, "reason": "one man"}',
    "Sorry, I cannot help with that.",
]


def _build(locomo: tuple[Path, Path], teacher: Any, out: Path) -> dict[str, Any]:
    data, images = locomo
    return build_vqa_benchmark(data, teacher, image_dir=images, out_path=out, splits=SPLITS)


# -- image cache ------------------------------------------------------------------------------


def test_resolve_image_by_sha256_then_by_basename(tmp_path, photos):
    url = "https://i.example.org/a/b/My%20Cat.JPG?x=1"
    assert resolve_image(url, tmp_path) is None
    assert resolve_image(url, None) is None and resolve_image(url, tmp_path / "absent") is None
    (tmp_path / "My Cat.JPG").write_bytes(photos["chelsea"])
    assert resolve_image(url, tmp_path) == tmp_path / "My Cat.JPG"
    (tmp_path / f"{url_key(url)}.txt").write_text("not an image")
    (tmp_path / f"{url_key(url)}.WEBP").write_bytes(photos["chelsea"])
    assert resolve_image(url, tmp_path) == tmp_path / f"{url_key(url)}.WEBP"
    assert url_key(url) == hashlib.sha256(url.encode()).hexdigest()


def test_public_names_are_sorted():
    assert vqa.__all__ == sorted(vqa.__all__) and image_cache.__all__ == sorted(image_cache.__all__)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_images_downloads_atomically_once_and_counts_failures(http_root, tmp_path, photos):
    base, root = http_root
    (root / "coffee.png").write_bytes(photos["coffee"])
    (root / "page.html").write_text("<html>moved</html>")
    good, html, gone = f"{base}/coffee.png", f"{base}/page.html", f"{base}/gone.jpg"
    cache = tmp_path / "cache"
    result = fetch_images([good, html, gone, good, "ftp://x/y.png"], cache, timeout=5)
    assert result.fetched == [good] and set(result.failed) == {html, gone, "ftp://x/y.png"}
    assert "not an image" in result.failed[html] and "404" in result.failed[gone]
    assert resolve_image(good, cache) == cache / f"{url_key(good)}.png"
    assert (cache / f"{url_key(good)}.png").read_bytes() == photos["coffee"]
    assert sorted(p.name for p in cache.iterdir()) == [f"{url_key(good)}.png"]  # no temp files left
    again = fetch_images([good], cache, timeout=5)
    assert again.counts() == {"fetched": 0, "present": 1, "failed": 0}


# -- V ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        ("Red", "red", True),
        ("  red.\n", "Red", True),
        ('"Red."', "red", True),
        ("\u201cred\u201d!", "red", True),
        ("3", "3.", True),
        ("t-shirt", "T-Shirt", True),
        ("dark red", "red", False),
        ("The colour is red.", "red", False),
        ("reds", "red", False),
        ("", "red", False),
        ("", "", False),
        ("3.5", "3", False),
    ],
)
def test_score_v(prediction, gold, correct):
    assert score_v(prediction, gold) is correct


# -- builder ----------------------------------------------------------------------------------


def test_build_rotates_types_drops_shared_and_skips_missing(tmp_path, locomo):
    teacher = ScriptedTeacher(TEACHER_OUTPUTS)
    out = tmp_path / "bench" / "vqa.jsonl"
    summary = _build(locomo, teacher, out)
    # file order positions of the kept photos: 1 (color), 4 (color), 8 (count), 9 (object)
    assert teacher.types == ["color", "color", "count", "object"]
    assert summary["images"] == 10 and summary["unassigned"] == 0
    assert summary["dropped_shared"] == 5  # the shared URL x3, the coffee bytes x2
    assert summary["skipped_missing"] == 1
    assert summary["unusable"] == {"unparseable": 1, "incomplete": 0, "not_one_word": 1}
    assert summary["records"] == 2 and summary["teacher_calls"] == 4 and summary["teacher_cache_hits"] == 0
    assert summary["per_split"] == {"train": 1, "test": 1} and summary["per_type"] == {"color": 1, "count": 1}
    records = load_vqa_benchmark(out)
    assert [r["id"] for r in records] == ["syn-1:D2:4", "syn-3:D3:3"]
    first = records[0]
    assert first["answer"] == "Red" and first["type"] == "color" and first["split"] == "train"
    assert first["caption"] == "a photo of an astronaut with a red flag" and first["speaker"] == "Ben"
    assert first["turn_text"] == "Look at this (4)." and first["teacher"] == "scripted-vlm"
    assert Path(first["image"]).read_bytes() == (locomo[1] / f"{url_key(first['url'])}.png").read_bytes()
    assert records[1]["answer"] == "1" and records[1]["question"] == "How many people are in the photo?"
    assert [r["id"] for r in load_vqa_benchmark(out, split="test")] == ["syn-3:D3:3"]


def test_build_resumes_from_the_teacher_cache(tmp_path, locomo):
    out = tmp_path / "vqa.jsonl"
    first = _build(locomo, ScriptedTeacher(TEACHER_OUTPUTS), out)
    assert (tmp_path / "vqa.teacher_cache.jsonl").exists()
    before = out.read_text(encoding="utf-8")
    again = _build(locomo, ScriptedTeacher([]), out)  # would fail if asked
    assert again["teacher_calls"] == 0 and again["teacher_cache_hits"] == 4
    assert out.read_text(encoding="utf-8") == before
    assert {k: v for k, v in again.items() if not k.startswith("teacher_")} == {
        k: v for k, v in first.items() if not k.startswith("teacher_")}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"question": "What colour is the cup in the photo?", "answer": " blue! ", "reason": "r"}', None),
        ('[{"question": "q?", "answer": "mug", "reason": "r"}]', None),
        ('{"question": "q?", "answer": "light blue", "reason": "r"}', "not_one_word"),
        ('{"question": "q?", "answer": "", "reason": "r"}', "incomplete"),
        ('{"question": "q?", "answer": true}', "incomplete"),
        ('{"answer": "mug"}', "incomplete"),
        ("[1, 2]", "incomplete"),
        ("no json at all", "unparseable"),
    ],
)
def test_teacher_output_reading(raw, problem):
    fields, why = vqa._read_output(raw)
    assert why == problem and (fields is None) == (problem is not None)


def test_question_prompt_names_the_type_and_rejects_unknown_types(tmp_path, photos):
    path = tmp_path / "x.png"
    path.write_bytes(photos["camera"])
    messages = question_messages(path, "count")
    assert "Question type: count" in messages[-1]["content"][1]["text"]
    with pytest.raises(ConfigError):
        question_messages(path, "texture")


def test_loader_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(InvalidInputError, match="lacks"):
        load_vqa_benchmark(bad)
    with pytest.raises(InvalidInputError):
        load_vqa_benchmark(tmp_path / "absent.jsonl")


# -- LoCoMo QA with photos --------------------------------------------------------------------


def test_locomo_ingestion_sends_cached_photos_and_counts_caption_fallbacks(tmp_path, locomo, make_model):
    data, images = locomo
    conversation = load_locomo(data)[0]  # syn-1: the shared photo is not cached, the other two are
    assert [t.dia_id for t in conversation.turns if t.img_url] == ["D1:3", "D2:4", "D3:3"]
    model = make_model()
    model.supports_images = True
    options = RunOptions(progress=False, image_dir=str(images))
    result = run_config([conversation], parse_config("memlora"), model, tmp_path / "vlm",
                        embedder=DeterministicEmbedder(), options=options)
    assert result["images"] == {"image_turns": 3, "images_sent": 2, "caption_fallbacks": 1}
    extraction = [c for c in model.calls if c.operation is Operation.EXTRACTION]
    prompts = "\n".join(str(c.messages[-1]["content"]) for c in extraction)
    assert "[shares a photo: a photo of tomatoes in a garden]" in prompts  # the fallback
    assert sum(len(c.images) for c in extraction) == 2  # the two cached photos, as pixels
    assert json.loads((tmp_path / "vlm" / "runs" / "memlora" / "syn-1" / "calls.jsonl").read_text().splitlines()[0]
                      ).get("images") is None  # D1:1-2 carry no photo
    # the same run again, through the report: all cached, counted once, in results.json and report.md
    results = evaluate_locomo([conversation], [parse_config("memlora")], lambda config: model, tmp_path / "vlm",
                              embedder=DeterministicEmbedder(), options=options, plots=False)
    assert results["meta"]["images"] == {"memlora": result["images"]}
    assert "1 of 3 photo turns fell back to the caption" in (tmp_path / "vlm" / "report.md").read_text()

    text_model = make_model()  # text-only: the photo option changes nothing
    plain = run_config([conversation], parse_config("memlora"), text_model, tmp_path / "text",
                       embedder=DeterministicEmbedder(), options=options)
    assert plain["images"] == {}
    text_prompts = "\n".join(str(c.messages[-1]["content"]) for c in text_model.calls
                             if c.operation is Operation.EXTRACTION)
    assert "[shares a photo: a cup of coffee]" in text_prompts
    assert "images" not in RunOptions().fingerprint()  # runs cached before photos existed still match


def test_cli_locomo_takes_an_image_dir():
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    args = parser.parse_args(["locomo", "--data", "x.json", "--out", "o", "--image-dir", "imgs"])
    assert args.image_dir == "imgs"


class _TeacherServer(_QuietHandler):
    """An OpenAI-compatible /chat/completions that asks nothing and answers one canned question."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["model"] == "tiny-vlm" and body["messages"][1]["content"][0]["type"] == "image_url"
        content = '{"question": "In the photo, what is on the sleeve?", "answer": "flag", "reason": "r"}'
        reply = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def test_cli_vqa_build_with_a_loopback_teacher(tmp_path, locomo, capsys):
    data, images = locomo
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps(SPLITS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TeacherServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    argv = ["vqa-build", "--data", str(data), "--image-dir", str(images), "--out", str(tmp_path / "b.jsonl"),
            "--teacher-url", f"http://127.0.0.1:{server.server_address[1]}/v1", "--splits", str(splits)]
    try:
        assert eval_cli.run(parser.parse_args(argv)) == 2  # no --teacher-model: a clear error
        assert "--teacher-model" in capsys.readouterr().err
        assert eval_cli.run(parser.parse_args([*argv, "--teacher-model", "tiny-vlm"])) == 0
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 4 and summary["teacher"] == "tiny-vlm"
    assert {r["answer"] for r in load_vqa_benchmark(tmp_path / "b.jsonl")} == {"flag"}


# -- evaluation -------------------------------------------------------------------------------


def _caption_generation(request: Any) -> str:
    prompt = request.messages[-1]["content"]
    return "Red." if "red flag" in prompt else "I do not know."


def _memory(generator: Any) -> Memory:
    return Memory(MemoryConfig(store="memory"), generator=generator, embedder=DeterministicEmbedder())


@pytest.fixture
def bench(tmp_path, locomo) -> list[dict[str, Any]]:
    out = tmp_path / "vqa.jsonl"
    _build(locomo, ScriptedTeacher(TEACHER_OUTPUTS), out)
    return load_vqa_benchmark(out)


def test_evaluate_caption_baseline_through_a_real_memory(bench):
    generator = ScriptedGenerator({"generation": _caption_generation})
    result = evaluate_vqa(bench, lambda: _memory(generator), config="caption")
    assert result["count"] == 2 and result["V"] == 0.5
    assert result["per_type"] == {"color": {"count": 1, "V": 1.0}, "count": {"count": 1, "V": 0.0}}
    assert result["operations"] == {"generation": 2}
    row = result["rows"][0]
    assert row["prediction"] == "Red." and row["correct"] and row["operation"] == "generation"
    asked = generator.calls[0].messages[-1]["content"]
    assert "In the photo, what colour is the flag? Answer with one word." in asked
    with pytest.raises(ConfigError, match="text-only"):
        evaluate_vqa(bench, _memory(ScriptedGenerator({}, supports_images=True)), config="caption")


def test_evaluate_memlora_v_answers_from_the_stored_photo(bench):
    generator = ScriptedGenerator(
        {"vqa": ['{"answer": "red", "reason": "the flag on the sleeve"}', '{"answer": "2", "reason": "two"}'],
         "generation": ["unused"]},
        supports_images=True,
    )
    memory = _memory(generator)
    result = evaluate_vqa(bench, memory, config="memlora-v")
    assert result["operations"] == {"vqa": 2} and result["V"] == 0.5
    assert result["rows"][0]["reason"] == "the flag on the sleeve" and result["rows"][0]["image_ids"]
    vqa_calls = [c for c in generator.calls if c.operation is Operation.VQA]
    assert len(vqa_calls) == 2 and all(len(c.images) == 1 for c in vqa_calls)
    assert memory.get_all(user_id="vqa-syn-1:D2:4") == []  # each record's scope is deleted afterwards
    with pytest.raises(ConfigError, match="VLM"):
        evaluate_vqa(bench, _memory(ScriptedGenerator({})), config="memlora-v")


def test_evaluate_memlora_v_with_a_tiny_real_vlm(bench):
    pytest.importorskip("transformers")
    from memlora_engine.backbone.tiny import tiny_vlm_backbone

    result = evaluate_vqa(bench[:1], _memory(tiny_vlm_backbone()), config="memlora-v")
    assert result["count"] == 1 and result["operations"] == {"vqa": 1}
    assert isinstance(result["rows"][0]["prediction"], str)  # random weights: the answer is noise
