"""Agent middleware for LangChain 1.x ``create_agent``: recall memories before the model, save after."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from memlora_engine import Memory, MemoryRecord
from memlora_integrations._scope import resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, renamed_keywords
from memlora_integrations._turns import ingest_turn
from memlora_integrations.langchain._messages import exchange_texts

__all__ = ["MemLoRAMiddleware"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Relevant memories about the user from earlier conversations:\n{memories}"


class MemLoRAMiddleware(AgentMiddleware):
    """Gives a ``create_agent`` agent long-term memory.

    * Before every model call (``wrap_model_call``), the scope's memories most
      relevant to the last human message are added to the system message of that
      request only; the agent state is not changed, so memories never pile up in
      the conversation.
    * After the agent finishes (``after_agent``), the last human message and the
      agent's final reply are given to ``Memory.add``, where the on-device model
      extracts what is worth remembering. Tool calls and tool results are not
      ingested.

    Setup:
        .. code-block:: bash

            pip install "memlora[langchain]"

    Instantiate:
        .. code-block:: python

            from langchain.agents import create_agent
            from memlora_engine import Memory
            from memlora_integrations.langchain import MemLoRAMiddleware

            memory = Memory()
            agent = create_agent(
                model=llm,
                tools=[...],
                middleware=[MemLoRAMiddleware(memory, user_id="alice")],
            )

    Usage:
        .. code-block:: python

            agent.invoke({"messages": [{"role": "user", "content": "I'm allergic to peanuts."}]})
            # a later run, even in a new process, sees "Alice is allergic to peanuts":
            agent.invoke({"messages": [{"role": "user", "content": "Suggest a snack."}]})

    Args:
        memory: the engine (an ``AsyncMemory`` is unwrapped).
        user_id: scope id; at least one of ``user_id``, ``agent_id`` and ``run_id``.
        agent_id: scope id.
        run_id: scope id.
        k: memories recalled per model call.
        filters: metadata filter for recall, in the engine's grammar.
        score_threshold: drop memories whose similarity is below this.
        template: system text with a ``{memories}`` placeholder (a bullet list).
        ingest: ingest each finished exchange; False makes the middleware read-only.
        infer: extract facts with the model (default); False stores each exchange as given.
        metadata: stored with every memory the middleware creates.
        **deprecated: ``threshold`` and ``save``, the old spellings of ``score_threshold``
            and ``ingest`` (accepted with a ``DeprecationWarning``).
    """

    threshold = deprecated_alias("threshold")
    save = deprecated_alias("save")

    def __init__(
        self,
        memory: Memory,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        score_threshold: float | None = None,
        template: str = DEFAULT_TEMPLATE,
        ingest: bool = True,
        infer: bool = True,
        metadata: dict[str, Any] | None = None,
        **deprecated: Any,
    ) -> None:
        super().__init__()
        if deprecated:
            renamed = renamed_keywords(
                type(self).__name__,
                deprecated,
                {"score_threshold": score_threshold, "ingest": ingest},
                {"score_threshold": None, "ingest": True},
            )
            score_threshold, ingest = renamed["score_threshold"], renamed["ingest"]
        if "{memories}" not in template:
            raise ValueError("template must contain a {memories} placeholder")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.memory = resolve_memory(memory)
        self.scope = scope_kwargs(user_id, agent_id, run_id)
        self.k = k
        self.filters = filters
        self.score_threshold = score_threshold
        self.template = template
        self.ingest = ingest
        self.infer = infer
        self.metadata = dict(metadata) if metadata else None
        self.tools = []

    # -- recall --------------------------------------------------------------------------
    def recall(self, messages: Sequence[BaseMessage]) -> list[MemoryRecord]:
        """The memories relevant to the last human message of ``messages`` (none without one)."""
        query = _last_human_text(messages)
        if not query:
            return []
        return self.memory.search(query, limit=self.k, filters=self.filters, threshold=self.score_threshold, **self.scope)

    def _with_memories(self, request: ModelRequest, records: list[MemoryRecord]) -> ModelRequest:
        if not records:
            return request
        block = self.template.format(memories="\n".join(f"- {r.text}" for r in records))
        system = request.system_message
        if system is None:
            return request.override(system_message=SystemMessage(content=block))
        if isinstance(system.content, str):
            content: Any = f"{system.content}\n\n{block}" if system.content else block
        else:
            content = [*system.content, {"type": "text", "text": block}]
        return request.override(system_message=SystemMessage(content=content))

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        return handler(self._with_memories(request, self.recall(request.messages)))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        records = await asyncio.to_thread(self.recall, request.messages)
        return await handler(self._with_memories(request, records))

    # -- save ----------------------------------------------------------------------------
    def after_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        if self.ingest:
            ingest_turn(
                self.memory, _last_exchange(state["messages"]), scope=self.scope, metadata=self.metadata, infer=self.infer
            )
        return None

    async def aafter_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.after_agent, state, runtime)


def _last_human_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text.strip()
    return ""


def _last_exchange(messages: Sequence[AnyMessage]) -> list[dict[str, Any]]:
    """The last human message and the final AI reply after it (both text), or [] if unanswered."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            break
    else:
        return []
    replies = [m for m in messages[index + 1 :] if isinstance(m, AIMessage) and not m.tool_calls and m.text.strip()]
    if not replies:
        return []
    return exchange_texts([messages[index], replies[-1]])
