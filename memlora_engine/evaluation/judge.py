"""J: LLM-as-judge accuracy with Mem0's CORRECT/WRONG prompt.

The prompt is Mem0's ``ACCURACY_PROMPT`` (``evaluation/metrics/llm_judge.py``,
Apache-2.0, Copyright Mem0; see ``memlora_engine/prompts/mem0/NOTICE``), kept word
for word so J is comparable with Mem0's and the MemLoRA paper's numbers (which used
gpt-4o-mini at temperature 0).

A judge is any LangChain chat model (anything with ``.invoke(messages)``) or an
OpenAI-compatible ``/chat/completions`` endpoint (:class:`OpenAICompatibleJudge`).
Nothing is called unless a judge is configured; without one J is "not measured".
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Protocol

from memlora_engine._openai_compat import chat_completion_content

__all__ = ["ACCURACY_PROMPT", "ChatModelJudge", "Judge", "OpenAICompatibleJudge", "judge_prompt", "parse_label"]

ACCURACY_PROMPT = """
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
"""  # noqa: W291 -- trailing spaces are part of Mem0's prompt text


def judge_prompt(question: str, gold: str, prediction: str) -> str:
    return ACCURACY_PROMPT.format(question=question, gold_answer=gold, generated_answer=prediction)


_LABEL = re.compile(r"\b(CORRECT|WRONG|INCORRECT)\b", re.IGNORECASE)


def parse_label(text: str) -> bool | None:
    """True for CORRECT, False for WRONG, None when the reply has no usable label.

    Reads ``{"label": ...}`` JSON first (also inside code fences or prose), then a
    bare label word; a reply naming both labels outside JSON uses the last one, as
    the prompt asks the judge to *finish* with its label.
    """
    if not isinstance(text, str):
        return None
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        label = data.get("label") if isinstance(data, dict) else None
        if isinstance(label, str) and label.strip().upper() in ("CORRECT", "WRONG", "INCORRECT"):
            return label.strip().upper() == "CORRECT"
    words = _LABEL.findall(text)
    if not words:
        return None
    return words[-1].upper() == "CORRECT"


class Judge(Protocol):
    name: str

    def judge(self, question: str, gold: str, prediction: str) -> str:
        """The judge's raw reply."""
        ...


class ChatModelJudge:
    """A LangChain chat model (or anything with ``.invoke(list_of_messages)``) as judge."""

    def __init__(self, model: Any, name: str | None = None) -> None:
        if not callable(getattr(model, "invoke", None)):
            raise TypeError("the judge model needs an .invoke(messages) method (a LangChain chat model)")
        self.model = model
        self.name = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__

    def judge(self, question: str, gold: str, prediction: str) -> str:
        reply = self.model.invoke([{"role": "user", "content": judge_prompt(question, gold, prediction)}])
        content = getattr(reply, "content", reply)
        if isinstance(content, list):  # content blocks
            content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
        return str(content)


class OpenAICompatibleJudge:
    """An OpenAI-compatible chat-completions endpoint (e.g. a local vLLM or llama.cpp server).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the model name the server expects.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY`` when set.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.model = model
        self.name = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout

    def judge(self, question: str, gold: str, prediction: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": judge_prompt(question, gold, prediction)}],
            "temperature": 0.0,
        }
        content = chat_completion_content(
            self.url, body, api_key=self.api_key, timeout=self.timeout, what=f"judge endpoint {self.url}"
        )
        return str(content)
