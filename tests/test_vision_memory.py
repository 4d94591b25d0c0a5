"""Images in the memory pipeline: caption path, native image extraction, VQA routing, isolation.

The engine, Chroma, the image store and the history run for real; the model is the
project's ScriptedGenerator (``supports_images=True`` plays a VLM) or a tiny real LLaVA.
"""

from __future__ import annotations

import io
import json

import pytest

pytest.importorskip("PIL")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine import Memory, MemoryConfig  # noqa: E402
from memlora_engine._vision import refers_to_image  # noqa: E402
from memlora_engine.errors import ConfigError, InvalidInputError  # noqa: E402
from memlora_engine.images import load_image  # noqa: E402
from memlora_engine.parsing import parse_vqa  # noqa: E402
from memlora_engine.testing import ScriptedGenerator  # noqa: E402
from memlora_engine.types import Operation, Scope  # noqa: E402

FACT = '{"facts": ["Caroline went to a pottery class"]}'


def memory_scope(user_id: str) -> Scope:
    return Scope(user_id=user_id)


def _png(array, size=(48, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def coffee() -> bytes:
    return _png(skimage_data.coffee())


@pytest.fixture(scope="module")
def cat() -> bytes:
    return _png(skimage_data.chelsea())


def _turn(image, text="Look at the bowl I made in pottery class!", caption=None) -> dict:
    part = {"type": "image", "image": image}
    if caption:
        part["caption"] = caption
    return {"role": "user", "name": "Caroline", "content": [{"type": "text", "text": text}, part]}


# -- text-only generator: the caption baseline ---------------------------------------------------
def test_text_only_extraction_sees_the_caption_and_memories_point_to_the_image(make_memory, coffee):
    gen = ScriptedGenerator({"extraction": [FACT]})
    memory = make_memory(gen)
    result = memory.add(_turn(coffee, caption="a cup of coffee on a table"), user_id="c")
    assert result.ok
    request = gen.calls[0]
    assert request.images == ()
    assert "Caroline: Look at the bowl I made in pottery class! [shares a photo: a cup of coffee on a table]" in (
        request.messages[-1]["content"])
    image_id = load_image(coffee).id
    records = {r.text: r.metadata for r in memory.get_all(user_id="c")}
    assert records["Caroline went to a pottery class"]["image_ids"] == image_id
    image_memory = ('Caroline shared a photo: a cup of coffee on a table '
                    '(with the message "Look at the bowl I made in pottery class!")')
    assert records[image_memory] == {"memory_type": "image", "image_id": image_id,
                                     "caption": "a cup of coffee on a table"}
    assert memory.image_store.get(memory_scope("c"), image_id).data == coffee
    assert memory.stats.images == {"stored": 1}


def test_an_image_without_caption_is_counted_and_a_captioner_fills_in(make_memory, coffee):
    gen = ScriptedGenerator({"extraction": ['{"facts": []}']})
    memory = make_memory(gen)
    memory.add(_turn(coffee), user_id="c")
    assert gen.calls[-1].messages[-1]["content"].endswith("[shares a photo]")
    assert memory.stats.images == {"uncaptioned": 1, "stored": 1}

    seen = []
    memory.captioner = lambda image: seen.append(image.size) or "  a   brown cup "
    memory.add(_turn(coffee, text="again"), user_id="c")
    assert seen == [(48, 48)]
    assert gen.calls[-1].messages[-1]["content"].endswith("[shares a photo: a brown cup]")


def test_infer_false_keeps_the_words_and_one_image_memory(make_memory, coffee):
    memory = make_memory()
    result = memory.add(_turn(coffee, caption="coffee"), user_id="c", infer=False, metadata={"src": "chat"})
    texts = [e.text for e in result]
    assert texts == ["Look at the bowl I made in pottery class!",
                     'Caroline shared a photo: coffee (with the message "Look at the bowl I made in pottery class!")']
    assert all(r.metadata["src"] == "chat" for r in memory.get_all(user_id="c"))


def test_the_same_image_shared_twice_is_stored_once(tmp_path, make_memory, coffee):
    memory = make_memory(persistent=True)
    for _ in range(2):
        memory.add(_turn(coffee, caption="coffee"), user_id="c", infer=False)
    assert len(list((tmp_path / "data" / "images").rglob("*.png"))) == 1
    assert len(memory.get_all(user_id="c")) == 2  # the words and one image memory


def test_different_photos_with_the_same_words_are_two_memories(tmp_path, make_memory, coffee, cat):
    memory = make_memory(persistent=True)
    for photo in (coffee, cat, coffee):  # image-only messages: every image memory reads "Caroline shared a photo"
        memory.add({"role": "user", "name": "Caroline", "content": [{"type": "image", "image": photo}]},
                   user_id="c", infer=False)
    records = memory.get_all(user_id="c")
    assert [r.text for r in records] == ["Caroline shared a photo", "Caroline shared a photo"]
    assert {r.metadata["image_id"] for r in records} == {load_image(coffee).id, load_image(cat).id}
    assert len(list((tmp_path / "data" / "images").rglob("*.png"))) == 2
    assert memory.stats.images["stored"] == 2


def test_deleting_an_image_memory_deletes_its_file(tmp_path, make_memory, coffee):
    memory = make_memory(persistent=True)
    memory.add(_turn(coffee, caption="coffee"), user_id="c", infer=False)
    image_memory = next(r for r in memory.get_all(user_id="c") if r.metadata.get("memory_type") == "image")
    memory.delete(image_memory.id, user_id="c")
    assert list((tmp_path / "data" / "images").rglob("*.png")) == []
    assert [r.text for r in memory.get_all(user_id="c")] == ["Look at the bowl I made in pottery class!"]


def test_an_unreadable_image_raises_before_anything_is_stored(make_memory, coffee):
    gen = ScriptedGenerator({"extraction": [FACT]})
    memory = make_memory(gen)
    bad = {"role": "user", "content": [{"type": "text", "text": "two photos"}, {"type": "image", "image": coffee},
                                       {"type": "image", "image": b"garbage"}]}
    with pytest.raises(InvalidInputError, match="not a readable image"):
        memory.add(bad, user_id="c")
    assert gen.calls == [] and memory.get_all(user_id="c") == []
    assert not memory.image_store.has(memory_scope("c"), load_image(coffee).id)


def test_extraction_failure_applies_no_facts_but_keeps_the_image(make_memory, coffee):
    memory = make_memory(ScriptedGenerator({"extraction": ["no json here"]}))
    result = memory.add(_turn(coffee, caption="coffee"), user_id="c")
    assert not result.ok and result.facts == []
    assert [r.metadata.get("memory_type") for r in memory.get_all(user_id="c")] == ["image"]
    assert memory.stats[Operation.EXTRACTION].parse_failures == 1


# -- a vision generator: pixels in extraction, VQA routing ---------------------------------------
def _vlm(vqa=('{"answer": "brown", "reason": "The cup is brown."}',), generation=("from memory",)):
    return ScriptedGenerator({"extraction": [FACT], "vqa": list(vqa), "generation": list(generation)},
                             supports_images=True)


def test_a_vision_model_sees_the_pixels_during_extraction(make_memory, coffee, cat):
    gen = _vlm()
    memory = make_memory(gen)
    turns = [_turn(coffee), {"role": "assistant", "content": "Nice!"},
             {"role": "user", "name": "Caroline", "content": [{"type": "text", "text": "and my cat"},
                                                             {"type": "image", "image": cat}]}]
    memory.add(turns, user_id="c")
    request = gen.calls[0]
    assert [load_image(image).id for image in request.images] == [load_image(coffee).id, load_image(cat).id]
    prompt = request.messages[-1]["content"]
    assert "pottery class! [shares a photo: see image 1]" in prompt and "and my cat [shares a photo: see image 2]" in prompt
    assert memory.stats.images == {"stored": 2}


def test_a_question_about_a_photo_goes_to_vqa_with_the_stored_image(make_memory, coffee, cat):
    gen = _vlm()
    memory = make_memory(gen)
    memory.add(_turn(coffee, caption="a cup of coffee"), user_id="c", infer=False)
    memory.add(_turn(cat, text="This is my cat Chelsea", caption="a tabby cat"), user_id="c", infer=False)
    answer = memory.answer("What colour is the cup in the photo Caroline shared?", user_id="c")
    assert (answer.operation, answer.text, answer.reason) == ("vqa", "brown", "The cup is brown.")
    assert answer.image_ids == [load_image(coffee).id]
    request = gen.calls[-1]
    assert request.operation is Operation.VQA and request.json_schema is not None
    assert request.images[0].tobytes() == load_image(coffee).pil().tobytes()
    assert request.messages[-1]["content"] == "Question: What colour is the cup in the photo Caroline shared?"


def test_questions_not_about_a_photo_use_generation(make_memory, coffee):
    gen = _vlm()
    memory = make_memory(gen)
    memory.add(_turn(coffee, caption="a cup of coffee"), user_id="c", infer=False)
    answer = memory.answer("Where does Caroline take classes?", user_id="c")
    assert (answer.operation, answer.text, answer.reason) == ("generation", "from memory", None)
    forced = memory.answer("What is in the photo?", user_id="c", route="text")
    assert forced.operation == "generation"


def test_an_image_given_with_the_question_goes_to_vqa(make_memory, cat):
    gen = _vlm(vqa=['{"answer": "cat"}'])
    memory = make_memory(gen)
    answer = memory.answer("What animal is this?", user_id="c", images=[cat])
    assert (answer.operation, answer.text, answer.reason) == ("vqa", "cat", "")
    assert gen.calls[-1].images[0].size == (48, 48)


def test_a_text_only_generator_gets_the_question_image_as_a_caption(make_memory, cat):
    gen = ScriptedGenerator({"generation": ["a cat"]})
    memory = make_memory(gen)
    memory.captioner = lambda image: "a tabby cat on a chair"
    answer = memory.answer("What animal is this?", user_id="c", images=[cat])
    assert answer.operation == "generation"
    assert "- The photo in the question shows: a tabby cat on a chair" in gen.calls[-1].messages[-1]["content"]


def test_a_text_only_generator_without_captioner_warns_that_question_images_are_ignored(make_memory, cat):
    gen = ScriptedGenerator({"generation": ["no idea"]})
    memory = make_memory(gen)
    with pytest.warns(UserWarning, match="images are ignored"):
        answer = memory.answer("What animal is this?", user_id="c", images=[cat])
    assert answer.operation == "generation" and answer.image_ids == []


def test_forced_vqa_needs_a_vision_model_and_an_image(make_memory, coffee):
    with pytest.raises(ConfigError, match="takes images"):
        make_memory(ScriptedGenerator({"generation": ["x"]})).answer("What is it?", user_id="c", route="vqa")
    with pytest.raises(InvalidInputError, match="no image"):
        make_memory(_vlm()).answer("What is it?", user_id="c", route="vqa")
    with pytest.raises(InvalidInputError, match="route must be"):
        make_memory(_vlm()).answer("What is it?", user_id="c", route="pixels")


def test_unparseable_vqa_output_is_counted_and_returned_raw(make_memory, coffee):
    memory = make_memory(_vlm(vqa=["It is brown, I think"]))
    answer = memory.answer("What colour is this?", user_id="c", images=[coffee])
    assert answer.operation == "vqa" and answer.text == "It is brown, I think"
    assert answer.reason is None and "vqa" in answer.failure
    assert memory.stats[Operation.VQA].parse_failures == 1


def test_one_users_image_is_never_seen_by_another(make_memory, coffee):
    gen = _vlm()
    memory = make_memory(gen)
    memory.add(_turn(coffee, caption="a cup of coffee"), user_id="alice", infer=False)
    answer = memory.answer("What colour is the cup in the photo?", user_id="bob")
    assert answer.operation == "generation" and answer.memories == []
    assert all(call.images == () for call in gen.calls)
    assert not memory.image_store.has(memory_scope("bob"), load_image(coffee).id)


def test_images_persist_across_reopen_and_go_with_delete_all(tmp_path, embedder, coffee):
    config = MemoryConfig(data_dir=tmp_path / "data")
    with Memory(config, generator=_vlm(), embedder=embedder) as memory:
        memory.add(_turn(coffee, caption="a cup of coffee"), user_id="c", infer=False)
    with Memory(config, generator=_vlm(), embedder=embedder) as memory:
        answer = memory.answer("What colour is the cup in the photo?", user_id="c")
        assert answer.operation == "vqa" and answer.image_ids == [load_image(coffee).id]
        memory.delete_all(user_id="c")
        assert list((tmp_path / "data" / "images").rglob("*.png")) == []
        assert memory.answer("What colour is the cup in the photo?", user_id="c").operation == "generation"


@pytest.mark.parametrize(
    ("question", "visual"),
    [("What is in the photo Caroline shared?", True), ("What did the painting show?", True),
     ("How many dogs are in the picture?", True), ("When did Caroline go to the LGBTQ support group?", False),
     ("What colour is Melanie's car?", False)],
)
def test_refers_to_image(question, visual):
    assert refers_to_image(question) is visual


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"answer": "red", "reason": "The cup is red."}', ("red", "The cup is red.")),
        ('```json\n{"answer": " Red ", "reason": "x"}\n```', ("Red", "x")),
        ('<think>hmm</think>{"answer": 3, "reason": "three cats"}', ("3", "three cats")),
        ('[{"answer": "dog"}]', ("dog", "")),
        ('{"answer": "blue", "reason": ', ("blue", "")),
        ('{"answer": "blue", "reason": "The cup on the le', ("blue", "The cup on the le")),
    ],
)
def test_parse_vqa(raw, parsed):
    assert parse_vqa(raw) == parsed


@pytest.mark.parametrize(
    "raw", ['{"reason": "no answer"}', '{"answer": ""}', "plain words", '{"answer": true}', '{"answer": "R7R7R7'],
)
def test_parse_vqa_rejects_output_without_an_answer(raw):
    from memlora_engine.errors import ModelOutputError

    with pytest.raises(ModelOutputError):
        parse_vqa(raw)


def test_the_vqa_prompt_is_versioned_apart_from_the_text_prompts():
    from memlora_engine import prompts

    assert prompts.VQA_PROMPT_VERSION != prompts.PROMPT_VERSION
    assert json.loads(json.dumps(prompts.render_prompt("memlora", Operation.VQA, question="Q?")))[1] == {
        "role": "user", "content": "Question: Q?"}
