"""Image inputs and their storage: every accepted shape, content addressing, scope isolation."""

from __future__ import annotations

import base64
import io

import pytest

pytest.importorskip("PIL")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from memlora_engine.errors import InvalidInputError, MemoryNotFoundError  # noqa: E402
from memlora_engine.images import ImageInput, ImageStore, load_image  # noqa: E402
from memlora_engine.messages import normalize_messages  # noqa: E402
from memlora_engine.types import Scope  # noqa: E402


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.coffee()).resize((64, 48)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photo_file(tmp_path, photo_png):
    path = tmp_path / "coffee.png"
    path.write_bytes(photo_png)
    return path


def test_every_source_shape_loads_to_the_same_image(photo_png, photo_file):
    data_url = "data:image/png;base64," + base64.b64encode(photo_png).decode()
    loaded = [
        load_image(photo_png),
        load_image(photo_file),
        load_image(str(photo_file)),
        load_image(photo_file.as_uri()),
        load_image(data_url),
        load_image(ImageInput(photo_png, "a cup")),
    ]
    assert {image.id for image in loaded} == {loaded[0].id}
    assert loaded[0].extension == "png"
    assert loaded[0].pil().size == (64, 48)


def test_a_pil_image_is_stored_as_png_and_decodes_to_the_same_pixels():
    pil = Image.fromarray(skimage_data.astronaut()).resize((32, 32))
    loaded = load_image(pil)
    assert loaded.extension == "png"
    assert loaded.pil().tobytes() == pil.convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"not an image at all", "not a readable image"),
        ("/no/such/file.png", "not found"),
        ("data:image/png,rawtext", "base64"),
        ("data:image/png;base64,@@@", "base64"),
        (12, "path, a URL, bytes or a PIL image"),
        ("", "path, a URL, bytes or a PIL image"),
    ],
)
def test_bad_image_sources_get_a_clear_error(source, message):
    with pytest.raises(InvalidInputError, match=message):
        load_image(source)


@pytest.mark.parametrize("root", ["disk", "memory"])
def test_store_is_content_addressed_and_per_scope(tmp_path, photo_png, root):
    store = ImageStore(tmp_path / "images" if root == "disk" else None)
    alice, bob = Scope(user_id="alice"), Scope(user_id="bob")
    image = load_image(photo_png)
    assert store.put(alice, image) == store.put(alice, load_image(photo_png)) == image.id
    if root == "disk":
        assert len(list((tmp_path / "images").rglob("*.png"))) == 1
    assert store.get(alice, image.id).data == photo_png
    assert not store.has(bob, image.id)
    with pytest.raises(MemoryNotFoundError):
        store.get(bob, image.id)
    store.drop(alice)
    assert not store.has(alice, image.id)


def test_nothing_is_written_before_an_image_is_stored(tmp_path):
    ImageStore(tmp_path / "images")
    assert not (tmp_path / "images").exists()


def test_store_ignores_ids_that_are_not_hashes(tmp_path, photo_png):
    store = ImageStore(tmp_path / "images")
    store.put(Scope(user_id="a"), load_image(photo_png))
    assert store.path(Scope(user_id="a"), "../../etc/passwd") is None
    assert not store.has(Scope(user_id="a"), "*")


# -- message shapes -------------------------------------------------------------------------------
def _sources(messages) -> list:
    return [image.source for m in normalize_messages(messages, images=True) for image in m.get("images", [])]


def test_openai_huggingface_and_langchain_part_shapes(photo_png):
    b64 = base64.b64encode(photo_png).decode()
    pil = Image.new("RGB", (4, 4))
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
            {"type": "image_url", "image_url": "https://example.org/b.png"},
            {"type": "image", "image": pil, "caption": "black square"},
            {"type": "image", "url": "https://example.org/c.png"},
            {"type": "image", "base64": b64, "mime_type": "image/png"},
            {"type": "image", "source_type": "base64", "data": b64, "mime_type": "image/jpeg"},
            photo_png,
        ],
    }
    sources = _sources(message)
    assert sources[:5] == ["https://example.org/a.png", "https://example.org/b.png", pil,
                           "https://example.org/c.png", f"data:image/png;base64,{b64}"]
    assert sources[5] == f"data:image/jpeg;base64,{b64}" and sources[6] == photo_png
    [normalized] = normalize_messages(message, images=True)
    assert normalized["content"] == "look" and normalized["images"][2].caption == "black square"


def test_images_are_dropped_unless_asked_for(photo_png):
    [normalized] = normalize_messages({"role": "user", "content": [{"type": "text", "text": "hi"}, photo_png]})
    assert normalized == {"role": "user", "content": "hi"}


def test_an_image_part_without_an_image_is_an_error():
    with pytest.raises(InvalidInputError, match="image part needs"):
        normalize_messages({"role": "user", "content": [{"type": "image"}]}, images=True)


def test_langchain_message_with_image_content(photo_png):
    messages = pytest.importorskip("langchain_core.messages")
    url = "data:image/png;base64," + base64.b64encode(photo_png).decode()
    human = messages.HumanMessage(content=[{"type": "text", "text": "my cat"},
                                           {"type": "image_url", "image_url": {"url": url}}])
    [normalized] = normalize_messages([human], images=True)
    assert normalized["content"] == "my cat"
    assert load_image(normalized["images"][0]).data == photo_png


def test_llama_index_message_with_image_block(photo_png, photo_file):
    llms = pytest.importorskip("llama_index.core.base.llms.types")
    message = llms.ChatMessage(role="user", blocks=[llms.TextBlock(text="my coffee"),
                                                    llms.ImageBlock(path=photo_file)])
    [normalized] = normalize_messages([message], images=True)
    assert normalized["content"] == "my coffee"
    assert load_image(normalized["images"][0]).id == load_image(photo_png).id


def test_an_http_url_is_fetched_once_when_the_image_is_added(tmp_path, photo_png):
    import functools
    import http.server
    import threading

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "coffee.png").write_bytes(photo_png)
    (tmp_path / "site" / "page.html").write_text("<html>not an image</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert load_image(f"{base}/coffee.png").data == photo_png
        with pytest.raises(InvalidInputError, match="not a readable image"):
            load_image(f"{base}/page.html")
        with pytest.raises(InvalidInputError, match="cannot fetch image"):
            load_image(f"{base}/missing.png")
    finally:
        server.shutdown()
        server.server_close()
