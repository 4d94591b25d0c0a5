"""Legacy LangChain memory (``ConversationChain(memory=...)``) backed by MemLoRA.

Needs ``langchain-classic``, where ``BaseMemory`` lives since LangChain 1.0.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, get_buffer_string
from pydantic import ConfigDict, Field, field_validator, model_validator

from memlora_engine import Memory, MemoryRecord, MissingDependencyError
from memlora_integrations._scope import chat_session, resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, rename_deprecated
from memlora_integrations._turns import ingest_turn
from memlora_integrations.langchain._messages import exchange_texts, from_engine, to_engine

try:
    from langchain_classic.base_memory import BaseMemory
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingDependencyError("langchain-classic", "langchain") from exc

__all__ = ["MemLoRAMemory"]


class MemLoRAMemory(BaseMemory):
    """Long-term memory for legacy chains such as ``ConversationChain``.

    Before each call, ``load_memory_variables`` searches the scope's long-term
    memories with the current input and adds the session's recent turns; after it,
    ``save_context`` appends the exchange to the session buffer and gives it to
    ``Memory.add``, which extracts facts with the on-device model. Memories and the
    session buffer are persisted, so a later process picks up where this one ended.

    The defaults fit ``ConversationChain``'s default prompt: ``memory_key="history"``,
    ``input_key="input"``, ``output_key="response"``.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain]"

    Instantiate:
        .. code-block:: python

            from memlora_engine import Memory
            from memlora_integrations.langchain import MemLoRAMemory

            memory = Memory()
            chat_memory = MemLoRAMemory(memory=memory, user_id="alice", session_id="chat-1")

    Usage:
        .. code-block:: python

            chat_memory.save_context({"input": "I'm vegetarian."}, {"response": "Noted!"})
            chat_memory.load_memory_variables({"input": "What should I cook tonight?"})
            # {"history": "Relevant memories:\\n- Alice is vegetarian\\n\\nHuman: I'm vegetarian.\\nAI: Noted!"}

    Use within a chain:
        .. code-block:: python

            from langchain_classic.chains import ConversationChain

            chain = ConversationChain(llm=llm, memory=chat_memory)
            chain.invoke({"input": "Any dinner ideas?"})["response"]

    Settings use the integrations' shared vocabulary (``k``, ``score_threshold``,
    ``ingest``, ``infer``, ``forget``); ``threshold`` is a deprecated spelling of
    ``score_threshold``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory
    """The engine; an ``AsyncMemory`` is unwrapped to the ``Memory`` it wraps."""
    session_id: str = "default"
    """The chat session whose recent turns are shown."""
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    memory_key: str = "history"
    input_key: str | None = "input"
    """Input holding the user's message; when absent from the inputs, the single other input is used."""
    output_key: str | None = "response"
    """Output holding the reply; when absent from the outputs, the single output is used."""
    return_messages: bool = False
    """Return a list of messages (for chat prompts) instead of one string."""
    k: int = Field(default=5, ge=1)
    """Long-term memories retrieved per call."""
    filters: dict[str, Any] | None = None
    """Metadata filter in the engine's grammar, e.g. ``{"topic": "food"}``."""
    score_threshold: float | None = None
    """Drop memories whose similarity score is below this."""
    recent_messages: int = Field(default=6, ge=0)
    """Recent session messages shown besides the long-term memories (0 for none)."""
    ingest: bool = True
    """Give each exchange to ``Memory.add``; False keeps only the session buffer."""
    infer: bool = True
    """Extract facts with the model; False stores each exchange as given (``Memory.add(infer=False)``)."""
    metadata: dict[str, Any] | None = None
    """Stored with every memory this class creates."""
    human_prefix: str = "Human"
    ai_prefix: str = "AI"
    memories_header: str = "Relevant memories from earlier conversations:"

    threshold = deprecated_alias("threshold")

    def __init__(self, **data: Any) -> None:
        super().__init__(**rename_deprecated(data, type(self).__name__, ("threshold",)))

    @field_validator("memory", mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Memory:
        return resolve_memory(value)

    @model_validator(mode="after")
    def _check_scope(self) -> MemLoRAMemory:
        scope_kwargs(self.user_id, self.agent_id, self.run_id)
        return self

    @property
    def _scope(self) -> dict[str, str]:
        return scope_kwargs(self.user_id, self.agent_id, self.run_id)

    @property
    def memory_variables(self) -> list[str]:
        return [self.memory_key]

    # -- load ----------------------------------------------------------------------------
    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Relevant long-term memories (searched with the current input) and recent turns.

        Without an input (``load_memory_variables({})``, how LangChain's docs inspect a
        memory) there is nothing to search with: only the recent turns are returned.
        """
        query = self._human(inputs).text.strip() if self._has_input(inputs) else ""
        records = self._search(query) if query else []
        recent = []
        if self.recent_messages:
            stored = chat_session(self.memory, self.session_id, self._scope).messages(self.recent_messages)
            recent = [from_engine(m) for m in stored]
        if self.return_messages:
            messages: list[BaseMessage] = []
            if records:
                messages.append(SystemMessage(content=self._listing(records)))
            return {self.memory_key: messages + recent}
        parts = []
        if records:
            parts.append(self._listing(records))
        if recent:
            parts.append(get_buffer_string(recent, human_prefix=self.human_prefix, ai_prefix=self.ai_prefix))
        return {self.memory_key: "\n\n".join(parts)}

    async def aload_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.load_memory_variables, inputs)

    def _search(self, query: str) -> list[MemoryRecord]:
        return self.memory.search(
            query, limit=self.k, filters=self.filters, threshold=self.score_threshold, **self._scope
        )

    def _listing(self, records: list[MemoryRecord]) -> str:
        return "\n".join([self.memories_header, *(f"- {r.text}" for r in records)])

    # -- save ----------------------------------------------------------------------------
    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Append the exchange to the session and ingest it into long-term memory."""
        human = self._human(inputs)
        ai = AIMessage(content=str(outputs[self._key(outputs, self.output_key, "output")]))
        chat_session(self.memory, self.session_id, self._scope).append([to_engine(human), to_engine(ai)])
        if self.ingest:  # the text, and the input's image parts
            ingest_turn(
                self.memory, exchange_texts([human, ai]), scope=self._scope, metadata=self.metadata, infer=self.infer
            )

    async def asave_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        await asyncio.to_thread(self.save_context, inputs, outputs)

    def _human(self, inputs: dict[str, Any]) -> HumanMessage:
        """The user's message: text, or a list of content parts (text and images)."""
        said = inputs[self._key(inputs, self.input_key, "input")]
        return HumanMessage(content=said if isinstance(said, list) else str(said))

    def _has_input(self, inputs: dict[str, Any]) -> bool:
        return (self.input_key is not None and self.input_key in inputs) or any(
            k not in (self.memory_key, "stop") for k in inputs
        )

    def _key(self, values: dict[str, Any], preferred: str | None, what: str) -> str:
        if preferred is not None and preferred in values:
            return preferred
        candidates = [k for k in values if k not in (self.memory_key, "stop")]
        if len(candidates) != 1:
            raise ValueError(
                f"cannot tell which {what} key holds the message: set {what}_key "
                f"(got keys {sorted(values)}, {what}_key={preferred!r})"
            )
        return candidates[0]

    # -- clear ---------------------------------------------------------------------------
    def clear(self, *, forget: bool = False) -> None:
        """Forget the session's recent turns; long-term memories stay.

        Args:
            forget: also forget everything the scope remembers (``Memory.delete_all``):
                its long-term memories, their history and all its sessions.
        """
        if forget:
            self.memory.delete_all(**self._scope)
        else:
            chat_session(self.memory, self.session_id, self._scope).clear()

    async def aclear(self, *, forget: bool = False) -> None:
        await asyncio.to_thread(self.clear, forget=forget)
