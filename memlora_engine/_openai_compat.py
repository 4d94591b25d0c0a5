"""One POST to an OpenAI-compatible ``/chat/completions`` endpoint (teachers and judges)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from memlora_engine.errors import GeneratorError

__all__ = ["chat_completion_content"]


def chat_completion_content(url: str, body: dict[str, Any], *, api_key: str | None, timeout: float, what: str) -> Any:
    """POST ``body`` to ``url`` and return the first choice's message content.

    Any transport error or unexpected reply becomes ``GeneratorError`` naming ``what``.
    """
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- user-configured URL
            data = json.loads(response.read().decode("utf-8"))
        return data["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise GeneratorError(f"{what} failed: {exc}") from exc
