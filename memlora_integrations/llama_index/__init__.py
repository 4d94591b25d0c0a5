"""LlamaIndex integrations of the MemLoRA engine.

* :class:`MemLoRAMemory` -- a ``BaseMemory`` for chat engines and agents;
* :class:`MemLoRAMemoryBlock` -- a block of LlamaIndex's ``Memory``;
* :class:`MemLoRALLM` -- the on-device model as a LlamaIndex LLM.

Each takes an engine instance (or a ``Generator``) by injection and uses only the
engine's public API. Requires ``pip install "memlora[llamaindex]"``.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # tested in a subprocess: test_li_missing_extra.py
    from memlora_engine import MissingDependencyError

    raise MissingDependencyError("llama-index-core", "llamaindex") from exc

from memlora_integrations.llama_index.llms import MemLoRALLM  # noqa: E402
from memlora_integrations.llama_index.memory import MemLoRAMemory  # noqa: E402
from memlora_integrations.llama_index.memory_block import MemLoRAMemoryBlock  # noqa: E402

__all__ = ["MemLoRALLM", "MemLoRAMemory", "MemLoRAMemoryBlock"]
