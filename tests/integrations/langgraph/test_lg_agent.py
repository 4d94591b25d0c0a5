"""create_agent(..., store=MemLoRAStore(...)) with the middleware: remembered across threads and processes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

HERE = Path(__file__).parent
REPO = HERE.parents[2]


def _load_agent_module():
    if "lg_agent" in sys.modules:
        return sys.modules["lg_agent"]
    spec = importlib.util.spec_from_file_location("lg_agent", HERE / "lg_agent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lg_agent"] = module
    spec.loader.exec_module(module)
    return module


lg_agent = _load_agent_module()


def tool_results(result: dict) -> list[str]:
    return [m.content for m in result["messages"] if isinstance(m, ToolMessage)]


def test_a_tool_writes_in_one_thread_and_another_thread_reads_it(lg_memory) -> None:
    agent, model = lg_agent.build_agent(
        lg_memory,
        lg_agent.call("save_memory", fact="Alice is vegetarian"), AIMessage("Noted."),
        lg_agent.call("recall_memories", query="what does alice eat"), AIMessage("Try a vegetable curry."),
        checkpointer=InMemorySaver(),
    )
    first = lg_agent.ask(agent, "Remember that I'm vegetarian.", thread="t1")
    assert tool_results(first) == ["saved alice-is-vegetarian"]

    second = lg_agent.ask(agent, "What should I cook for dinner?", thread="t2")
    assert len(second["messages"]) == 4  # a new thread: none of t1's messages
    # the tool's own memory first, then what the middleware ingested from t1 (the same scope)
    assert tool_results(second) == ["- Alice is vegetarian\n- Remember that I'm vegetarian."]
    # the middleware recalled the tool's memory (the same scope) into the system message too
    assert "- Alice is vegetarian" in model.seen[2][0].content
    # and ingested each finished exchange through the model: the user's words became memories
    assert {"Remember that I'm vegetarian.", "What should I cook for dinner?", "Alice is vegetarian"} == {
        r.text for r in lg_memory.get_all(user_id="alice")}


def test_a_new_process_on_the_same_data_directory_remembers(tmp_path, lg_fakes) -> None:
    agent, _ = lg_agent.build_agent(lg_fakes.build_memory(tmp_path),
                                    lg_agent.call("save_memory", fact="Alice is allergic to peanuts"),
                                    AIMessage("Noted."))
    lg_agent.ask(agent, "I'm allergic to peanuts, remember it.", thread="t1")

    child = textwrap.dedent(f"""
        import importlib.util, sys
        from langchain_core.messages import AIMessage, ToolMessage
        for name, path in [("lc_fakes", {str(lg_fakes.__file__)!r}), ("lg_agent", {str(HERE / "lg_agent.py")!r})]:
            spec = importlib.util.spec_from_file_location(name, path)
            module = sys.modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        lg_agent = sys.modules["lg_agent"]
        memory = sys.modules["lc_fakes"].build_memory({str(tmp_path)!r})
        agent, model = lg_agent.build_agent(memory, lg_agent.call("recall_memories", query="allergies"),
                                            AIMessage("No peanuts then."))
        result = lg_agent.ask(agent, "Any snack ideas?", thread="fresh")
        print("TOOL:", [m.content for m in result["messages"] if isinstance(m, ToolMessage)])
        print("SYSTEM:", model.seen[0][0].content.replace("\\n", " | "))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "TOOL: [\"- Alice is allergic to peanuts\\n- I'm allergic to peanuts, remember it.\"]" in done.stdout
    assert "- Alice is allergic to peanuts" in done.stdout.split("SYSTEM:", 1)[1]
