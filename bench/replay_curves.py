"""Learning curves from replayed corrections, over several seeds in one process.

`triage eval FILE --replay-corrections --seed N --json` gives one seed; this runs the same
replay (routing.replay) for several seeds with one embedding cache, so each text is embedded
once, and prints per seed the windows plus a summary: first and last window, how many
corrections it took to reach a category accuracy, and the confidence bins.

Run from the repository root, e.g.:
  nice .venv/bin/python bench/replay_curves.py ../shared/datasets/support_tickets/tickets.csv \
      --text-col body --label-col category_proposed --where language=en --limit 2000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.evaluation import load_dataset, parse_where
from routing.replay import replay_corrections


def _summary(record: dict[str, Any], target: float) -> dict[str, Any]:
    windows = record["windows"]
    reached = None
    corrections = 0
    for window in windows:
        corrections += window["corrections"]
        if reached is None and window.get("accuracy", 0.0) >= target:
            reached = {"rows": window["first_row"] + window["n"] - 1, "corrections": corrections}
    keys = [key for key in windows[0] if key.endswith("accuracy")] + ["needs_human_rate"]
    return {
        "first_window": {key: windows[0].get(key) for key in keys},
        "last_window": {key: windows[-1].get(key) for key in keys},
        f"first_window_at_{target}": reached,
        "corrections": record["corrections"],
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(args.config) if args.config else load_config()
    rows = load_dataset(
        args.file,
        text_col=args.text_col,
        label_col=args.label_col,
        split_col=None,
        where=parse_where(args.where),
        optional_extra_cols={"priority": "priority", "sentiment": "sentiment"},
    )
    embedder = CachingEmbedder(MiniLMEmbedder.load())
    out: dict[str, Any] = {}
    for seed in args.seeds:
        pipeline = build_pipeline(config, embedder=embedder)
        report = await replay_corrections(
            rows, config=config, pipeline=pipeline, window=args.window, seed=seed, limit=args.limit
        )
        record = report.summary_json()
        out[str(seed)] = {"summary": _summary(record, args.target), **record}
        print(json.dumps({"seed": seed, **out[str(seed)]["summary"]}), flush=True)
    return out


def main() -> None:
    """Parse the arguments and replay each seed."""
    # As the bot does (bot/__main__.py): one BLAS thread for the small matrix work.
    threadpool_limits(limits=1)
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--config")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="category")
    parser.add_argument("--where", action="append", default=[])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--out", help="write every seed's whole report here as JSON")
    args = parser.parse_args()
    out = asyncio.run(_run(args))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
