"""CPU per ticket of the decision pipeline alone, with the LLM stand-in answering at once.

    PYTHONPATH=. .venv/bin/python bench/bench_pipeline_cpu.py [--tickets 300]

The same pipeline `triage run` builds (rules, redaction, language detection, the local model,
the LLM layer through the real openai client, escalation, the draft), run in one process on the
bench's customer messages, four at a time as the desk's workers run them. No Slack, no store:
what a ticket costs in `triage run` beyond this is the edge (Bolt, the Web API client, the
store). The LLM stand-in runs in a child process, so its CPU is not counted. Prints CPU
milliseconds per ticket (process time, every thread) and wall time; the first 20 tickets warm
the caches and are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from multiprocessing.synchronize import Event as EventType

from threadpoolctl import threadpool_limits

from bench.botrun import llm_answer, machine, ticket_text
from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.llm import LLMClassifier, build_openai_client
from routing.models import Ticket
from tests.standins.openai_server import OpenAIStandIn

WARM_UP = 20
CONCURRENCY = 4


def serve_llm(urls: multiprocessing.Queue[str], stop: EventType) -> None:
    """The LLM stand-in, in its own process until `stop` is set."""

    async def serve() -> None:
        async with OpenAIStandIn() as llm:
            llm.default = lambda body: llm_answer(body, 0.0)
            urls.put(llm.url)
            await asyncio.to_thread(stop.wait)

    asyncio.run(serve())


async def run(tickets: int, url: str) -> dict[str, object]:
    """Triage the bench's messages and time them."""
    config = load_config()
    client = build_openai_client(
        api_key="bench-key", base_url=url, timeout_seconds=30, max_retries=0
    )
    pipeline = build_pipeline(
        config,
        embedder=MiniLMEmbedder.load(),
        llm=LLMClassifier(client=client, config=config),
    )
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await pipeline.triage(Ticket(text=ticket_text(index), author="U0CUSTOMER"))

    async def batch(first: int, count: int) -> None:
        for index in range(first, first + count):
            queue.put_nowait(index)
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    await batch(1, WARM_UP)
    cpu, wall = time.process_time(), time.perf_counter()
    await batch(WARM_UP + 1, tickets)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await client.close()
    return {
        "tickets": tickets,
        "cpu_ms_per_ticket": round(cpu / tickets * 1000, 1),
        "wall_ms_per_ticket": round(wall / tickets * 1000, 1),
        "machine": machine(),
    }


def main() -> None:
    """Parse the options, run once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=300)
    args = parser.parse_args()
    threadpool_limits(limits=1)  # as `triage` runs the model (bot/__main__.py)
    urls: multiprocessing.Queue[str] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_llm, args=(urls, stop))
    server.start()
    try:
        print(json.dumps(asyncio.run(run(args.tickets, urls.get(timeout=60)))))
    finally:
        stop.set()
        server.join()


if __name__ == "__main__":
    main()
