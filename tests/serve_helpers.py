"""A real ``memlora serve`` app on loopback for tests, and the remote generator that talks to it.

:class:`LoopbackServer` runs an ASGI app under uvicorn on 127.0.0.1 (a free port) in a
daemon thread. :class:`Switchboard` lets one module-wide server answer with each test's
own :class:`~memlora_engine.testing.ScriptedGenerator`, and :class:`ScriptedRemote` is
the remote generator a test's ``Memory`` uses, exposing the requests that the scripted
model on the server side received (after the round trip over HTTP).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from memlora_engine.generator import Generation, GenerationRequest, SupportsAdapters
from memlora_engine.remote import OpenAICompatibleGenerator
from memlora_engine.serving import ServedModel
from memlora_engine.testing import ScriptedGenerator
from memlora_engine.types import Operation

BASE = "base"

# Every operation under its own name, plus the base model: what a server with all experts serves.
ALL_MODELS = [ServedModel(op.value, op, parent=BASE) for op in Operation] + [
    ServedModel(BASE, Operation.GENERATION, use_adapter=False)
]


class LoopbackServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="loopback-uvicorn", daemon=True)
        self.url = ""

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Switchboard(SupportsAdapters):
    """A generator that hands each call to ``current`` (the running test's scripted model)."""

    def __init__(self) -> None:
        self.current: ScriptedGenerator = ScriptedGenerator()

    def has_adapter(self, operation: Operation) -> bool:
        return self.current.has_adapter(operation)

    def generate(self, request: GenerationRequest) -> Generation:
        return self.current.generate(request)


class ScriptedRemote(OpenAICompatibleGenerator):
    """The remote generator for ``scripted`` served at ``url``: operations without an adapter go to the base model."""

    def __init__(self, url: str, scripted: ScriptedGenerator, **kwargs: Any) -> None:
        models = {op: op.value if scripted.has_adapter(op) else BASE for op in Operation}
        super().__init__(f"{url}/v1", models, base_model=BASE, **kwargs)
        self.scripted = scripted

    @property
    def calls(self) -> list[GenerationRequest]:
        """The requests the scripted model received on the server."""
        return self.scripted.calls
