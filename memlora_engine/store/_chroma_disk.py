"""What the embedded Chroma store does on disk beyond Chroma's own calls.

Three jobs, each about the right to be forgotten or about not corrupting the store:

* :func:`vacuum` rewrites ``chroma.sqlite3`` so deleted rows leave no bytes in free
  pages. It runs Python's ``sqlite3`` in a **child process**: Chroma's client links
  its own copy of SQLite, and two SQLite libraries in one process break each other's
  POSIX locks (closing one library's handle drops the other's locks), which let other
  processes write under a live connection and corrupted the store (issue #19, item 1;
  sqlite.org/howtocorrupt.html, 2.2.1). Across processes SQLite's own locking holds.
* :func:`remove_dead_segments` deletes vector-index folders no live segment names
  (a dropped collection's folder stays on disk and holds its vectors).
* :func:`harden_heap` makes the C allocator initialise every block it hands out and
  overwrite every block freed: Chroma persists HNSW buffers that may contain
  uninitialised memory, which held text of a forgotten scope (issue #19, item 3);
  with the allocator hardened, uninitialised memory is a constant byte. Where it is
  not available (not glibc), :func:`scrub_hnsw` zeroes the unused capacity at purge.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from memlora_engine.errors import StorageError

__all__ = ["harden_heap", "heap_hardened", "remove_dead_segments", "scrub_hnsw", "vacuum"]

logger = logging.getLogger(__name__)

_SEGMENT_DIR = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Run in a child interpreter (-I: isolated, -S: no site): VACUUM, then the live segments.
_VACUUM_SCRIPT = """
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=float(sys.argv[2]))
try:
    con.execute("VACUUM")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(json.dumps([row[0] for row in con.execute("SELECT id FROM segments")]))
finally:
    con.close()
"""

_M_PERTURB = -6  # glibc mallopt parameter
_PERTURB_BYTE = 0x5A
_hardened: bool | None = None


def vacuum(db: Path, *, timeout_s: float = 30.0) -> set[str]:
    """VACUUM ``db`` from a child process; returns the ids of the live segments.

    SQLite's busy handler waits up to ``timeout_s`` for another connection's write.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _VACUUM_SCRIPT, str(db), str(timeout_s)],
            capture_output=True, text=True, timeout=timeout_s + 30, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StorageError(f"could not purge deleted text from {db}: {exc}") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StorageError(f"could not purge deleted text from {db}: {reason}")
    return set(json.loads(done.stdout))


def remove_dead_segments(directory: Path, live: set[str]) -> list[Path]:
    """Delete the index folders under ``directory`` that no live segment names; the kept ones."""
    kept = []
    for child in directory.iterdir():
        if child.is_dir() and _SEGMENT_DIR.match(child.name):
            if child.name in live:
                kept.append(child)
            else:
                shutil.rmtree(child, ignore_errors=True)
    return kept


def harden_heap() -> bool:
    """Turn on glibc's ``M_PERTURB`` for this process, once; whether it is on.

    Every block ``malloc`` then hands out starts filled with one constant byte and
    every block freed is overwritten, so no buffer Chroma persists can carry text
    this process held before (costs a ``memset`` per allocation and free).
    """
    global _hardened
    if _hardened is None:
        _hardened = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                _hardened = bool(libc.gnu_get_libc_version and libc.mallopt(_M_PERTURB, _PERTURB_BYTE))
            except (OSError, AttributeError):
                _hardened = False
        if not _hardened:
            logger.info("the C allocator cannot be hardened here; forgotten text is scrubbed at purge instead")
    return _hardened


def heap_hardened() -> bool:
    """Whether :func:`harden_heap` has turned the hardening on in this process."""
    return bool(_hardened)


def scrub_hnsw(folder: Path) -> None:
    """Zero the unused capacity of a persisted HNSW index (``data_level0.bin``, ``length.bin``).

    The fallback where :func:`harden_heap` is unavailable: slots past the element
    count may carry heap garbage. Only a header this code understands (version 1,
    sizes that match the files) is touched. A later write can bring garbage back.
    """
    try:
        header = (folder / "header.bin").read_bytes()
        if len(header) < 36 or struct.unpack_from("<I", header, 0)[0] != 1:
            return
        _offset, capacity, count, per_element = struct.unpack_from("<QQQQ", header, 4)
        for name, width in (("data_level0.bin", per_element), ("length.bin", 4)):
            path = folder / name
            if not path.exists() or count > capacity or path.stat().st_size != capacity * width:
                continue
            with open(path, "r+b") as handle:
                handle.seek(count * width)
                handle.write(bytes((capacity - count) * width))
                handle.flush()
                os.fsync(handle.fileno())
    except (OSError, struct.error) as exc:
        logger.warning("could not scrub the vector index in %s: %s", folder, exc)
