"""Agent middleware for LangChain 1.x ``create_agent``: recall memories before the model, save after."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from memlora_engine import Memory, MemoryRecord, ScopeError
from memlora_integrations._scope import resolve_memory, scope_kwargs
from memlora_integrations._settings import deprecated_alias, renamed_keywords
from memlora_integrations._turns import ingest_turn
from memlora_integrations.langchain._messages import exchange_texts

__all__ = ["MemLoRAMiddleware"]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "Relevant memories about the user from earlier conversations:\n{memories}"
_SCOPE_FIELDS = ("user_id", "agent_id", "run_id")


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

    Key init args:
        memory: the engine ``Memory``.
        user_id / agent_id / run_id: the scope read and fed (or ``context_scope``).
        context_scope: scope fields read from the agent's runtime context per call.
        k / filters / score_threshold: which memories reach the system message.
        ingest / infer: remember the finished exchange, through the model or as is.
        name: the middleware's name (default from its scope fields), so a user-scope
            and an agent-scope instance can share an agent.

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

    One agent, many users: ``context_scope`` reads scope ids from the agent's runtime
    context on every call, so a single ``create_agent`` serves all users and each
    call sees and feeds only its own user's memories:

    .. code-block:: python

        @dataclass
        class Context:
            user_id: str

        agent = create_agent(model=llm, context_schema=Context,
                             middleware=[MemLoRAMiddleware(memory, context_scope=("user_id",))])
        agent.invoke({"messages": [...]}, context=Context(user_id="alice"))

    A call whose context lacks one of those ids raises ``ScopeError`` (it never falls
    back to a scope shared by everyone).

    Several instances can sit in one agent (say, a user scope and an agent scope):
    each has a ``name`` (LangChain refuses two middleware with one name), by default
    built from the scope fields it uses, e.g. ``"MemLoRAMiddleware[user_id]"``.

    Args:
        memory: the engine (an ``AsyncMemory`` is unwrapped).
        user_id: scope id; at least one of ``user_id``, ``agent_id``, ``run_id`` and
            ``context_scope``.
        agent_id: scope id.
        run_id: scope id.
        context_scope: scope ids read from the runtime context per call: scope field
            names (``("user_id",)``), or a mapping from scope field to the context's
            attribute or key (``{"user_id": "uid"}``). The context may be a dataclass,
            a pydantic model or a dict. Combined with the fixed ids above.
        name: this instance's name in the agent graph (see above).
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
        context_scope: Sequence[str] | Mapping[str, str] | None = None,
        name: str | None = None,
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
        self.context_scope = _context_fields(context_scope)
        fixed = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
        both = sorted(f for f in self.context_scope if fixed[f] is not None)
        if both:
            raise ValueError(f"{both} given both as a fixed id and in context_scope; choose one")
        # Validated now (ScopeError at construction) unless the context completes it per call.
        self.scope = {k: v for k, v in fixed.items() if v is not None} if self.context_scope else scope_kwargs(
            user_id, agent_id, run_id
        )
        kinds = sorted({*self.scope, *self.context_scope}, key=_SCOPE_FIELDS.index)
        self._name = name or f"{type(self).__name__}[{','.join(kinds)}]"
        self.k = k
        self.filters = filters
        self.score_threshold = score_threshold
        self.template = template
        self.ingest = ingest
        self.infer = infer
        self.metadata = dict(metadata) if metadata else None
        self.tools = []

    @property
    def name(self) -> str:
        """This instance's name in the agent graph (``name=``, or built from its scope fields)."""
        return self._name

    def scope_for(self, runtime: Runtime | None) -> dict[str, str]:
        """The scope of one call: the fixed ids plus those read from ``runtime.context``.

        Raises:
            ScopeError: the context lacks an id named in ``context_scope``.
        """
        if not self.context_scope:
            return self.scope
        context = runtime.context if runtime is not None else None
        ids = dict(self.scope)
        for scope_field, key in self.context_scope.items():
            value = _context_value(context, key)
            if not value:
                raise ScopeError(
                    f"{self.name}: the agent's runtime context has no {key!r} for the scope's {scope_field} "
                    f"(pass context=... to invoke; got {type(context).__name__})"
                )
            ids[scope_field] = str(value)
        return scope_kwargs(ids.get("user_id"), ids.get("agent_id"), ids.get("run_id"))

    # -- recall --------------------------------------------------------------------------
    def recall(self, messages: Sequence[BaseMessage], runtime: Runtime | None = None) -> list[MemoryRecord]:
        """The memories relevant to the last human message of ``messages`` (none without one).

        ``runtime`` supplies the scope ids named in ``context_scope``.
        """
        scope = self.scope_for(runtime)
        query = _last_human_text(messages)
        if not query:
            return []
        return self.memory.search(query, limit=self.k, filters=self.filters, threshold=self.score_threshold, **scope)

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
        return handler(self._with_memories(request, self.recall(request.messages, request.runtime)))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        records = await asyncio.to_thread(self.recall, request.messages, request.runtime)
        return await handler(self._with_memories(request, records))

    # -- save ----------------------------------------------------------------------------
    def after_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        if self.ingest:
            scope = self.scope_for(runtime)
            ingest_turn(
                self.memory, _last_exchange(state["messages"]), scope=scope, metadata=self.metadata, infer=self.infer
            )
        return None

    async def aafter_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.after_agent, state, runtime)


def _context_fields(context_scope: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``context_scope`` as {scope field: context key}, checked against the scope's fields."""
    if context_scope is None:
        return {}
    if isinstance(context_scope, str):
        context_scope = (context_scope,)
    fields = dict(context_scope) if isinstance(context_scope, Mapping) else {f: f for f in context_scope}
    unknown = sorted(set(fields) - set(_SCOPE_FIELDS))
    if unknown:
        raise ValueError(f"context_scope names {unknown}; a scope field is one of {list(_SCOPE_FIELDS)}")
    return fields


def _context_value(context: Any, key: str) -> Any:
    """``key`` of a runtime context: a mapping (TypedDict) or an object (dataclass, pydantic model)."""
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(key)
    return getattr(context, key, None)


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
