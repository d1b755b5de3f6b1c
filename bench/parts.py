"""Two asks to two teams, one ask to one: the offline split on the hand-written ticket files.

    nice .venv/bin/python bench/parts.py [FILE ...]   (default: every bench/data/*.jsonl)

A row with `teams` is a two-ask ticket: counted when the decision's parts name all its teams.
Any other row is a one-ask ticket: counted as wrongly split when its parts name two teams.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.models import Ticket

HERE = Path(__file__).resolve().parent


async def main(paths: list[Path]) -> None:
    pipeline = build_pipeline(load_config(), embedder=CachingEmbedder(MiniLMEmbedder.load()))
    both = multi = split = single = 0
    for path in paths:
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            triage = await pipeline.triage(Ticket(text=row["text"]))
            teams = {part.team for part in triage.decision.parts}
            if row.get("teams"):
                multi += 1
                both += set(row["teams"]) <= teams
                if not set(row["teams"]) <= teams:
                    print(f"  missed: {row['text'][:80]!r} -> {sorted(teams)}", file=sys.stderr)
            else:
                single += 1
                split += len(teams) > 1
                if len(teams) > 1:
                    print(f"  split: {row['text'][:80]!r} -> {sorted(teams)}", file=sys.stderr)
    print(json.dumps({"multi_both_teams": f"{both}/{multi}", "single_split": f"{split}/{single}"}))


if __name__ == "__main__":
    given = [Path(arg) for arg in sys.argv[1:]]
    asyncio.run(main(given or sorted((HERE / "data").glob("*.jsonl"))))
