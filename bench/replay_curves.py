"""Learning curves from replayed corrections, over several seeds in one process.

`triage eval FILE --replay-corrections --seed N --json` gives one seed; this runs the same
replay (routing.replay) for several seeds with one embedding cache, so each text is embedded
once, and prints per seed the windows plus a summary: first and last window, how many
corrections it took to reach a category accuracy, and the confidence bins.

Run from the repository root, e.g.:
  nice .venv/bin/python bench/replay_curves.py ../shared/datasets/support_tickets/tickets.csv \
      --text-col body --label-col category_proposed --where language=en --limit 2000 --seeds 0 1 2 \
      --cache /tmp/replay-embeddings.npz

--cache keeps the embeddings in a file outside the repository between runs (the model pass is
most of a replay's time on a busy machine); the vectors are the model's, so the figures are the
same with or without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import Embedder, MiniLMEmbedder
from routing.evaluation import load_dataset, parse_where
from routing.replay import replay_corrections


class FileCachedEmbedder:
    """Embeds each distinct text once, remembering the vectors in a .npz file between runs."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._inner: Embedder | None = None
        self._cache: dict[str, npt.NDArray[np.float32]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                self._cache = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    @property
    def dim(self) -> int:
        """The model's dimension."""
        return self._model().dim

    def _model(self) -> Embedder:
        if self._inner is None:
            self._inner = MiniLMEmbedder.load()
        return self._inner

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of texts, computing only those not seen before."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            for text, vector in zip(missing, self._model().encode(missing), strict=True):
                self._cache[text] = vector
            self._dirty = True
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[text] for text in texts])

    def save(self) -> None:
        """Write the vectors to the cache file, if there is one and something new was embedded."""
        if self._path is None or not self._dirty:
            return
        texts = list(self._cache)
        np.savez(
            self._path, texts=np.array(texts), vectors=np.stack([self._cache[t] for t in texts])
        )
        self._dirty = False


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
    embedder = FileCachedEmbedder(Path(args.cache) if args.cache else None)
    out: dict[str, Any] = {}
    for seed in args.seeds:
        pipeline = build_pipeline(config, embedder=embedder)
        report = await replay_corrections(
            rows, config=config, pipeline=pipeline, window=args.window, seed=seed, limit=args.limit
        )
        embedder.save()
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
    parser.add_argument("--cache", help="a .npz file keeping the embeddings between runs")
    args = parser.parse_args()
    out = asyncio.run(_run(args))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
