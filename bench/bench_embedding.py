"""Time the numpy MiniLM embedder: load, one ticket at a time, batches, and peak memory.

    .venv/bin/python bench/bench_embedding.py

Prints one JSON object. Whole-process time and memory: /usr/bin/time -v .venv/bin/python ...
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from routing.embedding import MiniLMEmbedder

REPO = Path(__file__).resolve().parent.parent

SAMPLES = REPO / "routing" / "defaults" / "samples.txt"
SHORT_TICKETS = 200
WARM_UP = 20
BATCH_ROUNDS = 3
LONG_TEXTS = 64


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def short_tickets() -> list[str]:
    """SHORT_TICKETS distinct short tickets made from the bundled sample messages."""
    samples = [line for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{samples[i % len(samples)]} Ref {1000 + i}." for i in range(SHORT_TICKETS)]


def main() -> None:
    """Run every measurement and print the figures as JSON."""
    started = time.perf_counter()
    embedder = MiniLMEmbedder.load()
    load_s = time.perf_counter() - started

    tickets = short_tickets()
    first = time.perf_counter()
    embedder.encode([tickets[0]])
    first_ticket_ms = (time.perf_counter() - first) * 1000
    rss_after_one_ticket = peak_rss_mb()

    for text in tickets[:WARM_UP]:
        embedder.encode([text])
    latencies = []
    for text in tickets:
        tick = time.perf_counter()
        embedder.encode([text])
        latencies.append((time.perf_counter() - tick) * 1000)
    latencies.sort()

    batch_seconds = []
    for _ in range(BATCH_ROUNDS):
        tick = time.perf_counter()
        embedder.encode(tickets, batch_size=32)
        batch_seconds.append(time.perf_counter() - tick)

    rng = np.random.default_rng(0)
    words = [
        "account",
        "billing",
        "export",
        "error",
        "invoice",
        "login",
        "password",
        "refund",
        "server",
        "timeout",
    ]
    long_texts = [" ".join(rng.choice(words, size=300)) for _ in range(LONG_TEXTS)]
    tick = time.perf_counter()
    embedder.encode(long_texts, batch_size=32)
    long_seconds = time.perf_counter() - tick

    figures = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_s": round(load_s, 3),
        "first_ticket_ms": round(first_ticket_ms, 2),
        "ticket_ms_median": round(statistics.median(latencies), 2),
        "ticket_ms_p95": round(latencies[int(0.95 * len(latencies)) - 1], 2),
        "tickets_timed": len(latencies),
        "batch32_short_texts_per_s": round(len(tickets) / min(batch_seconds), 1),
        "batch32_256_token_texts_per_s": round(LONG_TEXTS / long_seconds, 1),
        "peak_rss_mb_after_load_and_one_ticket": round(rss_after_one_ticket, 1),
        "peak_rss_mb_end": round(peak_rss_mb(), 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
