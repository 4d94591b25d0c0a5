"""Images in memory: loading any image input, and content-addressed storage per scope.

``add`` accepts images as a file path, a ``file://``/``http(s)://``/``data:`` URL, raw
bytes or a PIL image (see :func:`load_image`). Each is stored once per scope under the
sha256 of its bytes (``<root>/<scope key>/<sha256>.<ext>``), so forgetting a scope
removes its images and no scope can read another's. Nothing is written until an
image is stored; the in-memory store keeps images in a dict.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlora_engine.errors import InvalidInputError, MemoryNotFoundError, require
from memlora_engine.types import Scope

__all__ = ["ImageInput", "ImageStore", "LoadedImage", "load_image", "open_image", "scope_key"]

MAX_IMAGE_BYTES = 50 * 1024 * 1024
_ID = re.compile(r"^[0-9a-f]{64}$")
_FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class ImageInput:
    """An image found in a message: the caller's ``source`` and an optional ``caption``.

    The caption (LoCoMo's ``blip_caption``, an alt text) is what a text-only backbone
    remembers instead of the pixels.
    """

    source: Any
    caption: str | None = None


@dataclass(frozen=True)
class LoadedImage:
    """An image's bytes as stored, its id (sha256 of the bytes) and file extension."""

    data: bytes
    id: str
    extension: str

    def pil(self) -> Any:
        """The image as an RGB PIL image."""
        return open_image(self.data)


def open_image(data: bytes) -> Any:
    """Decode ``data`` into an RGB PIL image."""
    pil = require("PIL.Image", "vision")
    with pil.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _read_source(source: Any, *, timeout: float) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "save") and hasattr(source, "mode"):  # a PIL image
        buffer = io.BytesIO()
        image = source if source.mode in ("RGB", "RGBA", "L", "LA", "P", "I;16") else source.convert("RGB")
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError(
            f"an image must be a path, a URL, bytes or a PIL image, got {type(source).__name__}"
        )
    text = source.strip()
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise InvalidInputError("a data: image URL must be base64-encoded")
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError as exc:
            raise InvalidInputError(f"the data: image URL is not valid base64: {exc}") from exc
    parsed = urllib.parse.urlparse(text)
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(text, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                data = response.read(MAX_IMAGE_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot fetch image {text!r}: {exc}") from exc
        return data
    path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else Path(text).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"image file not found: {path}")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise InvalidInputError(f"image {path} is larger than {MAX_IMAGE_BYTES} bytes")
    return path.read_bytes()


def load_image(source: Any, *, timeout: float = 30.0) -> LoadedImage:
    """Read and check one image input (path, URL, bytes, PIL image or :class:`ImageInput`).

    Raises:
        InvalidInputError: the source is missing, unreachable, too large or not an image.
    """
    if isinstance(source, ImageInput):
        source = source.source
    if isinstance(source, LoadedImage):
        return source
    data = _read_source(source, timeout=timeout)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInputError(f"image is larger than {MAX_IMAGE_BYTES} bytes")
    pil = require("PIL.Image", "vision")
    try:
        with pil.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format or ""
    except Exception as exc:  # PIL raises assorted errors on non-images
        raise InvalidInputError(f"not a readable image ({len(data)} bytes): {exc}") from exc
    return LoadedImage(data=data, id=hashlib.sha256(data).hexdigest(), extension=_FORMATS.get(kind, "img"))


def scope_key(scope: Scope) -> str:
    """A directory name for ``scope``: the sha256 of its ids (ids may hold any character)."""
    ids = json.dumps([scope.user_id, scope.agent_id, scope.run_id], ensure_ascii=False)
    return hashlib.sha256(ids.encode("utf-8")).hexdigest()[:32]


class ImageStore:
    """Content-addressed image files, one directory per scope.

    Args:
        root: the directory (created on the first write); ``None`` keeps images in
            memory (for ``MemoryConfig(store="memory")``).
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[tuple[str, str], LoadedImage] = {}
        self._lock = threading.Lock()

    def put(self, scope: Scope, image: LoadedImage) -> str:
        """Store ``image`` for ``scope`` (once: same bytes, same file); return its id."""
        if self.root is None:
            with self._lock:
                self._memory.setdefault((scope_key(scope), image.id), image)
            return image.id
        folder = self.root / scope_key(scope)
        target = folder / f"{image.id}.{image.extension}"
        if target.is_file():
            return image.id
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(image.data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)  # atomic: a reader never sees half an image
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return image.id

    def path(self, scope: Scope, image_id: str) -> Path | None:
        """The file of ``image_id`` in ``scope`` (None for the in-memory store or when absent)."""
        if self.root is None or not _ID.match(image_id or ""):
            return None
        matches = sorted((self.root / scope_key(scope)).glob(f"{image_id}.*"))
        return matches[0] if matches else None

    def has(self, scope: Scope, image_id: str) -> bool:
        """True when ``scope`` holds the image ``image_id``."""
        if self.root is None:
            return (scope_key(scope), image_id) in self._memory
        return self.path(scope, image_id) is not None

    def get(self, scope: Scope, image_id: str) -> LoadedImage:
        """The stored image ``image_id`` of ``scope``.

        Raises:
            MemoryNotFoundError: this scope holds no such image.
        """
        if self.root is None:
            found = self._memory.get((scope_key(scope), image_id))
            if found is None:
                raise MemoryNotFoundError(f"no image {image_id!r} in this scope")
            return found
        path = self.path(scope, image_id)
        if path is None:
            raise MemoryNotFoundError(f"no image {image_id!r} in this scope")
        return LoadedImage(data=path.read_bytes(), id=image_id, extension=path.suffix.lstrip("."))

    def delete(self, scope: Scope, image_id: str) -> None:
        """Remove one image of ``scope`` (nothing when absent)."""
        if self.root is None:
            with self._lock:
                self._memory.pop((scope_key(scope), image_id), None)
            return
        path = self.path(scope, image_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def drop(self, scope: Scope) -> None:
        """Remove every image of ``scope``."""
        key = scope_key(scope)
        if self.root is None:
            with self._lock:
                for entry in [k for k in self._memory if k[0] == key]:
                    del self._memory[entry]
            return
        shutil.rmtree(self.root / key, ignore_errors=True)

    def clear(self) -> None:
        """Remove every image of every scope."""
        if self.root is None:
            with self._lock:
                self._memory.clear()
            return
        shutil.rmtree(self.root, ignore_errors=True)
