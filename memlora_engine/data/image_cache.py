"""A local cache of LoCoMo's conversation photos, and a downloader that fills it.

LoCoMo turns that share a photo carry ``img_url`` (remote URLs, often on hosts that
have since moved or vanished) and ``blip_caption``. The evaluation reads the photos
from a directory instead of the network. Its layout::

    <image dir>/
        3f5a...e1.jpg        # sha256 hex digest of the URL string, any image extension
        l7hozpetnhlb1.jpg    # or the URL's last path component (URL-unquoted), as is

:func:`resolve_image` looks for ``<sha256(url)>.<ext>`` first (``ext`` one of
:data:`IMAGE_EXTENSIONS`, any case), then for the URL's basename, so a directory
filled by :func:`fetch_images` and one filled by hand (or by another downloader that
keeps remote file names) both work. Basenames can collide between hosts
(``image.jpg``); the sha256 names cannot, which is why :func:`fetch_images` writes
those.

:func:`fetch_images` (``memlora eval fetch-images``) downloads the missing ones with
the standard library, writes each atomically and never overwrites a cached file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FetchResult", "IMAGE_EXTENSIONS", "fetch_images", "image_kind", "resolve_image", "url_key"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
"""File extensions :func:`resolve_image` accepts (compared case-insensitively)."""

MAX_BYTES = 50 * 1024 * 1024
_USER_AGENT = "memlora-fetch-images/1 (research; +https://github.com/snap-research/locomo)"
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"WEBP", 8, "webp"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tif"),
    (b"MM\x00*", 0, "tif"),
)


def url_key(url: str) -> str:
    """The cache name of ``url``: the sha256 hex digest of its (stripped) UTF-8 text."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()


def _basename(url: str) -> str | None:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url.strip()).path)).name
    return name if name not in ("", ".", "..") else None


def resolve_image(url: str, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    """The cached file of ``url`` in ``cache_dir``, or None (see the module docstring for the layout)."""
    if cache_dir is None or not url or not url.strip():
        return None
    root = Path(cache_dir)
    if not root.is_dir():
        return None
    key = url_key(url)
    for candidate in sorted(root.glob(f"{key}.*")):
        if candidate.suffix.lower() in IMAGE_EXTENSIONS and candidate.is_file():
            return candidate
    name = _basename(url)
    if name is not None and (root / name).is_file():
        return root / name
    return None


def image_kind(data: bytes) -> str | None:
    """The file extension of an image's bytes from its magic number (``"jpg"``, ``"png"``...), else None."""
    for magic, offset, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (kind != "webp" or data[:4] == b"RIFF"):
            return kind
    return None


@dataclass
class FetchResult:
    """What :func:`fetch_images` did.

    Attributes:
        fetched: URLs downloaded now.
        present: URLs that were already in the cache (not downloaded again).
        failed: URL -> why it could not be cached (HTTP error, not an image, too large...).
    """

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"fetched": len(self.fetched), "present": len(self.present), "failed": len(self.failed)}


def _download(url: str, timeout: float) -> bytes:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL (scheme {scheme!r})")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
        data = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    return data


def _write_atomic(folder: Path, name: str, data: bytes) -> Path:
    target = folder / name
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, target)  # a reader never sees half an image
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def fetch_images(
    urls: Iterable[str], cache_dir: str | os.PathLike[str], *, timeout: float = 30.0, workers: int = 4
) -> FetchResult:
    """Download every URL not yet in ``cache_dir`` to ``<sha256(url)>.<ext>``.

    The extension comes from the bytes' magic number; a response that is not an
    image (an HTML error page, say) is a failure, not a file. Nothing cached is
    downloaded again, so an interrupted run resumes.

    Args:
        urls: the image URLs (duplicates are fetched once).
        cache_dir: the image directory (created when missing).
        timeout: seconds per request.
        workers: parallel downloads.
    """
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    result = FetchResult()
    todo: list[str] = []
    for url in dict.fromkeys(u.strip() for u in urls if u and u.strip()):
        (result.present if resolve_image(url, root) is not None else todo).append(url)

    def one(url: str) -> tuple[str, str | None]:
        try:
            data = _download(url, timeout)
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            return url, f"{type(exc).__name__}: {exc}"
        kind = image_kind(data)
        if kind is None:
            return url, f"not an image ({len(data)} bytes starting {data[:16]!r})"
        _write_atomic(root, f"{url_key(url)}.{kind}", data)
        return url, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for url, error in pool.map(one, todo):
            if error is None:
                result.fetched.append(url)
            else:
                logger.warning("cannot fetch %s: %s", url, error)
                result.failed[url] = error
    logger.info("images: %s", result.counts())
    return result
