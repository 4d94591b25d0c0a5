"""``memlora bench-load``: N worker processes x M simulated users on the shared services.

The deployment it measures (docs/scaling.md, "Load test"): one Chroma server
(``chroma run``) holds the memories, one PostgreSQL holds the audit history and
the chat sessions, and ``--workers`` processes each run a
:class:`~memlora_engine.Memory` over both, serving ``--users`` users on threads.
Each simulated user runs ``--turns`` turns of ``add`` (a user message stating a
new fact naming the user, and the assistant's reply) then ``answer``. By default
both servers are throwaway ones started here on loopback (``--chroma`` and
``--database-url`` point at running ones instead).

The model (``--generator``):

* ``fake`` (default): extraction and update echo the turn's fact, in microseconds,
  so the figures are those of the shared services and the engine alone;
* ``serve``: a throwaway ``memlora serve`` (the shipped experts) on loopback, one
  model that every worker sends its operations to;
* ``in-process``: every worker loads its own backbone with the shipped experts
  (the single-machine deployment, for the ratio);
* a URL: a running OpenAI-compatible server (``memlora serve``, vLLM).

Reported per worker count: turns/s, p50/p99 of ``add`` and of ``answer``, the
memories stored, memories lost (an acknowledged ADD or UPDATE whose text the store
does not hold at the end, or an acknowledged DELETE it still holds) and
cross-tenant reads (a memory of another user among an answer's memories); the
last two must be 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import re
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to run, comma-separated")
    parser.add_argument("--users", type=int, default=4, help="simulated users per worker (threads)")
    parser.add_argument("--turns", type=int, default=5, help="turns (add + answer) per user")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop starting turns after this long per run")
    parser.add_argument("--chroma", default=None, help="HOST:PORT of a running Chroma server (default: start one)")
    parser.add_argument("--database-url", default=None, help="a running PostgreSQL (default: start one)")
    parser.add_argument("--generator", default="fake",
                        help="fake (default: an echo model), serve (start memlora serve with the shipped experts), "
                             "in-process (each worker loads the shipped experts), or the base URL of a running "
                             "OpenAI-compatible server (memlora serve, vLLM)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each in-process model, or of the started memlora serve (default: 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")


# One turn per template, in order: a user message stating a fact and a reply that follows
# up on it, the two-message window the shipped extraction expert was trained on (a bare
# "Noted." reply gets no fact out of it).
_TURNS = (
    ("I just adopted a cat named Tofu.", "That's wonderful! How is Tofu settling in?"),
    ("I moved to Oslo last month for a new job.", "Exciting! How do you like Oslo so far?"),
    ("I started playing the violin in September.", "That's great! Is it hard to learn?"),
    ("I work as a nurse at the city hospital.", "That must be demanding. Do you enjoy it?"),
    ("I eat ramen every Friday with my brother.", "Yum! Do you have a favourite place for it?"),
    ("I run five kilometres every morning before work.", "Impressive! How long have you been running?"),
    ("I am learning Portuguese for a trip to Brazil.", "Fun! When are you going?"),
    ("I bought a red bicycle for my commute.", "Nice! Is the ride to work long?"),
)
_NAMES = ("Kai", "Mira", "Tomas", "Leila", "Ravi", "Greta", "Jonah", "Ines")
_SPEAKER = re.compile(r"^(\w+): I (.+)$", re.MULTILINE)


class _EchoModel:
    """The fake model: extraction restates the user's sentence with the speaker's name; update ADDs each new fact.

    So the load is the engine's and the services', in microseconds of "model" time.
    """

    def has_adapter(self, operation: Any) -> bool:
        return True  # the short prompts the adapters are trained on, as a real deployment renders

    def generate(self, request: Any) -> Any:
        from memlora_engine.generator import Generation
        from memlora_engine.types import Operation

        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        if request.operation is Operation.EXTRACTION:
            return Generation(json.dumps({"facts": [f"{name} {rest}" for name, rest in _SPEAKER.findall(prompt)]}))
        if request.operation is Operation.UPDATE:
            facts = json.loads(prompt.split("New facts:\n", 1)[1].splitlines()[0])
            return Generation(json.dumps({"memory": [{"id": "new", "text": f, "event": "ADD"} for f in facts]}))
        return Generation("noted")


def _generator(kind: str, threads: int) -> Any:
    if kind == "fake":
        return _EchoModel()
    if kind == "in-process":
        from memlora_engine.backbone import load_backbone

        return load_backbone(num_threads=threads)
    from memlora_engine import OpenAICompatibleGenerator

    return OpenAICompatibleGenerator(kind)


def _worker(config: dict[str, Any], worker: int, users: int, turns: int, seconds: float, tag: str,
            generator: str, threads: int, out: Any, go: Any) -> None:
    """One worker process: ``users`` threads, each running its user's turns once every worker is ready."""
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    memory = Memory(MemoryConfig.from_dict(config), generator=_generator(generator, threads),
                    embedder=HashingEmbedder(384))
    out.put("ready")
    go.wait()
    deadline = time.monotonic() + seconds
    adds: list[float] = []
    answers: list[float] = []
    events: dict[str, list[tuple[str, str, str]]] = {}
    answered: list[tuple[str, str, str | None]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(number: int) -> None:
        user_id = f"{tag}-u{worker * 1000 + number}"
        mine: list[tuple[str, str, str]] = []  # (event, id, text) in the order they were acknowledged
        for turn in range(turns):
            if time.monotonic() > deadline:
                break
            said, reply = _TURNS[turn % len(_TURNS)]
            turn_messages = [{"role": "user", "name": _NAMES[number % len(_NAMES)], "content": said},
                             {"role": "assistant", "content": reply}]
            try:
                start = time.perf_counter()
                result = memory.add(turn_messages, user_id=user_id)
                took_add = time.perf_counter() - start
                mine += [(e.event.value, e.id, e.text) for e in result.events]
                start = time.perf_counter()
                answer = memory.answer("What do you know about me?", user_id=user_id)
                took_answer = time.perf_counter() - start
            except Exception as exc:  # counted, the run goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                adds.append(took_add)
                answers.append(took_answer)
                answered.extend((user_id, m.id, m.user_id) for m in answer.memories)
        with lock:
            events[user_id] = mine

    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    memory.close()
    out.put({"adds": adds, "answers": answers, "events": events, "answered": answered, "errors": errors})


def _expected(events: list[tuple[str, str, str]]) -> dict[str, str | None]:
    """Each memory id's state after a user's acknowledged events: its text, or None once deleted."""
    state: dict[str, str | None] = {}
    for event, memory_id, text in events:
        if event in ("ADD", "UPDATE"):
            state[memory_id] = text
        elif event == "DELETE":
            state[memory_id] = None
    return state


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


def _one_run(config: dict[str, Any], workers: int, generator: str, args: argparse.Namespace) -> dict[str, Any]:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    tag = f"lt-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    go = context.Event()
    procs = [context.Process(target=_worker, args=(config, w, args.users, args.turns, args.max_seconds, tag,
                                                    generator, args.threads, queue, go)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for _ in procs:  # the clock starts once every worker has imported and connected
        if queue.get(timeout=600) != "ready":
            raise SystemExit("a worker failed to start")
    start = time.monotonic()
    go.set()
    results = [queue.get(timeout=args.max_seconds + 600) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - start
    adds = [s for r in results for s in r["adds"]]
    answers = [s for r in results for s in r["answers"]]
    # Every acknowledged change must hold in its user's store (read back by a fresh client),
    # and every memory an answer showed must be one of the asking user's.
    reader = Memory(MemoryConfig.from_dict(config), embedder=HashingEmbedder(384))
    lost = stored = 0
    owner: dict[str, str] = {}
    for result in results:
        for user_id, acknowledged in result["events"].items():
            held = {r.id: r.text for r in reader.get_all(user_id=user_id)}
            stored += len(held)
            owner.update((memory_id, user_id) for memory_id in held)
            lost += sum(held.get(memory_id) != text for memory_id, text in _expected(acknowledged).items())
    reader.close()
    cross = sum(record_user != user_id or owner.get(memory_id, user_id) != user_id
                for result in results for user_id, memory_id, record_user in result["answered"])
    return {
        "workers": workers, "users_per_worker": args.users, "turns": len(adds), "seconds": round(elapsed, 1),
        "turns_per_s": round(len(adds) / elapsed, 2),
        "add": _percentiles(adds), "answer": _percentiles(answers),
        "memories_stored": stored, "memories_lost": lost, "cross_tenant_reads": cross,
        "errors": [e for r in results for e in r["errors"]][:5],
    }


def _machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    from memlora_engine.commands._loopback import ChromaServer, ModelServer, PostgresServer

    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    chroma: ChromaServer | None = None
    postgres: PostgresServer | None = None
    model_server: ModelServer | None = None
    with tempfile.TemporaryDirectory(prefix="memlora-load-") as tmp:
        try:
            if args.chroma:
                host, _, port = args.chroma.rpartition(":")
                chroma_host, chroma_port = host or "127.0.0.1", int(port)
            else:
                chroma = ChromaServer.launch(Path(tmp) / "chroma")
                chroma_host, chroma_port = "127.0.0.1", chroma.port
            if args.database_url:
                url = args.database_url
            else:
                postgres = PostgresServer.launch()
                url = postgres.url
            config = {"store": "http", "chroma_host": chroma_host, "chroma_port": chroma_port,
                      "database_url": url, "namespace": "loadtest"}
            generator = args.generator
            if generator == "serve":
                model_server = ModelServer.launch(threads=args.threads)
                generator = model_server.url
            runs = [_one_run(config, n, generator, args) for n in counts]
        finally:
            if model_server is not None:
                model_server.stop()
            if chroma is not None:
                chroma.stop()
            if postgres is not None:
                postgres.destroy()
    report = {"machine": _machine(), "cpus": multiprocessing.cpu_count(),
              "generator": args.generator, "model_threads": args.threads, "runs": runs}
    print(f"{report['machine']} ({report['cpus']} CPUs), generator: {report['generator']}, "
          f"model threads: {args.threads}")
    print("| workers | users | turns | turns/s | add p50 / p99 ms | answer p50 / p99 ms | memories stored "
          "| memories lost | cross-tenant reads |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['workers'] * r['users_per_worker']} | {r['turns']} | {r['turns_per_s']} | "
              f"{r['add']['p50_ms']} / {r['add']['p99_ms']} | {r['answer']['p50_ms']} / {r['answer']['p99_ms']} | "
              f"{r['memories_stored']} | {r['memories_lost']} | {r['cross_tenant_reads']} |")
        for error in r["errors"]:
            print("   error:", error)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    failed = any(r["memories_lost"] or r["cross_tenant_reads"] or r["errors"] for r in runs)
    return 1 if failed else 0
