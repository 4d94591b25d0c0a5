"""``memlora bench-load``: N worker processes x M simulated users on the shared services.

The deployment it measures (docs/scaling.md, "Load test"): one Chroma server
(``chroma run``) holds the memories, one PostgreSQL holds the audit history and
the chat sessions, and ``--workers`` processes each run a
:class:`~memlora_engine.Memory` over both, serving ``--users`` users on threads.
Each simulated user runs ``--turns`` turns of ``add`` (a new fact naming the
user) then ``answer``. By default both servers are throwaway ones started here on
loopback (``--chroma`` and ``--database-url`` point at running ones instead).

The model is a fake (an extraction and update that echo the turn's fact) unless
``--generator URL`` names an OpenAI-compatible server (``memlora serve``, vLLM),
so by default the figures are those of the shared services and the engine alone.

Reported per worker count: turns/s, p50/p99 of ``add`` and of ``answer``,
memories lost (a fact some ``add`` acknowledged that the store does not hold)
and cross-tenant reads (a memory of another user among an answer's memories);
the last two must be 0.
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
    parser.add_argument("--generator", default=None,
                        help="base URL of an OpenAI-compatible server (memlora serve, vLLM); default: the fake model")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")


_FACT = re.compile(r"lt-[0-9a-f]{8}-u\d+ turn \d+ likes item\d+")


class _EchoModel:
    """The fake model: extraction returns the turn's fact; update ADDs every fact it is shown.

    The engine itself drops the ADDs of facts already stored, so the load is the
    engine's and the services', in microseconds of "model" time.
    """

    def has_adapter(self, operation: Any) -> bool:
        return True  # the short prompts the adapters are trained on, as a real deployment renders

    def generate(self, request: Any) -> Any:
        from memlora_engine.generator import Generation
        from memlora_engine.types import Operation

        prompt = "\n".join(str(m.get("content", "")) for m in request.messages)
        facts = sorted(set(_FACT.findall(prompt)))
        if request.operation is Operation.EXTRACTION:
            return Generation(json.dumps({"facts": facts[-1:]}))
        if request.operation is Operation.UPDATE:
            return Generation(json.dumps({"memory": [{"id": "new", "text": f, "event": "ADD"} for f in facts]}))
        return Generation("noted")


def _generator(url: str | None) -> Any:
    if url is None:
        return _EchoModel()
    try:
        from memlora_engine import OpenAICompatibleGenerator  # type: ignore[attr-defined]
    except ImportError as exc:
        raise SystemExit("--generator needs memlora_engine.OpenAICompatibleGenerator (issue 22, item 1)") from exc
    return OpenAICompatibleGenerator(base_url=url)


def _worker(config: dict[str, Any], worker: int, users: int, turns: int, seconds: float, tag: str,
            generator_url: str | None, out: Any, go: Any) -> None:
    """One worker process: ``users`` threads, each running its user's turns once every worker is ready."""
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    memory = Memory(MemoryConfig.from_dict(config), generator=_generator(generator_url),
                    embedder=HashingEmbedder(384))
    out.put("ready")
    go.wait()
    deadline = time.monotonic() + seconds
    adds: list[float] = []
    answers: list[float] = []
    acknowledged: dict[str, list[str]] = {}
    cross = 0
    errors: list[str] = []
    lock = threading.Lock()

    def user(number: int) -> None:
        nonlocal cross
        user_id = f"{tag}-u{worker * 1000 + number}"
        mine: list[str] = []
        for turn in range(turns):
            if time.monotonic() > deadline:
                break
            fact = f"{user_id} turn {turn} likes item{turn}"
            try:
                start = time.perf_counter()
                result = memory.add(f"user: remember: {fact}", user_id=user_id)
                took_add = time.perf_counter() - start
                mine += [e.text for e in result.events]
                start = time.perf_counter()
                answer = memory.answer(f"What does {user_id} like?", user_id=user_id)
                took_answer = time.perf_counter() - start
            except Exception as exc:  # counted, the run goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                adds.append(took_add)
                answers.append(took_answer)
                cross += sum(not m.text.startswith(user_id + " ") for m in answer.memories)
        with lock:
            acknowledged[user_id] = mine

    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    memory.close()
    out.put({"adds": adds, "answers": answers, "acknowledged": acknowledged, "cross": cross, "errors": errors})


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


def _one_run(config: dict[str, Any], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    tag = f"lt-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    go = context.Event()
    procs = [context.Process(target=_worker, args=(config, w, args.users, args.turns, args.max_seconds, tag,
                                                    args.generator, queue, go)) for w in range(workers)]
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
    # Every acknowledged fact must be in its user's store (read back by a fresh client).
    reader = Memory(MemoryConfig.from_dict(config), embedder=HashingEmbedder(384))
    lost = 0
    for result in results:
        for user_id, facts in result["acknowledged"].items():
            stored = {r.text for r in reader.get_all(user_id=user_id)}
            lost += sum(f not in stored for f in facts)
    reader.close()
    return {
        "workers": workers, "users_per_worker": args.users, "turns": len(adds), "seconds": round(elapsed, 1),
        "turns_per_s": round(len(adds) / elapsed, 2),
        "add": _percentiles(adds), "answer": _percentiles(answers),
        "memories_lost": lost, "cross_tenant_reads": sum(r["cross"] for r in results),
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
    from memlora_engine.commands._loopback import ChromaServer, PostgresServer

    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    chroma: ChromaServer | None = None
    postgres: PostgresServer | None = None
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
            runs = [_one_run(config, n, args) for n in counts]
        finally:
            if chroma is not None:
                chroma.stop()
            if postgres is not None:
                postgres.destroy()
    report = {"machine": _machine(), "cpus": multiprocessing.cpu_count(),
              "generator": args.generator or "fake (echo)", "runs": runs}
    print(f"{report['machine']} ({report['cpus']} CPUs), generator: {report['generator']}")
    print("| workers | users | turns | turns/s | add p50 / p99 ms | answer p50 / p99 ms | memories lost | cross-tenant reads |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['workers'] * r['users_per_worker']} | {r['turns']} | {r['turns_per_s']} | "
              f"{r['add']['p50_ms']} / {r['add']['p99_ms']} | {r['answer']['p50_ms']} / {r['answer']['p99_ms']} | "
              f"{r['memories_lost']} | {r['cross_tenant_reads']} |")
        for error in r["errors"]:
            print("   error:", error)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    failed = any(r["memories_lost"] or r["cross_tenant_reads"] or r["errors"] for r in runs)
    return 1 if failed else 0
