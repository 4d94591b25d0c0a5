"""Framework integrations (LangChain, LlamaIndex) over the MemLoRA engine's public API."""

__all__: list[str] = []
