"""Languages on the support-ticket data set: detection, and what the offline pipeline does.

For each row of the given languages (the file's `language` column), the ticket (subject and body)
goes through the default offline pipeline. Printed per language: how often the detector agrees
with the column, how many tickets went to a human or to a team named for their language, how many
were routed confidently, how often the offline category was right (category_proposed), for the
confident ones and for all; how many took their category from their own words (the categories'
cues in that language: "category from its words" in the reasons) and how often that was right;
and how often the priority equals the file's.

    .venv/bin/python bench/languages.py ../shared/datasets/support_tickets/tickets.csv \
        --languages de,es,fr,pt --limit 300
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
from collections import Counter, defaultdict
from pathlib import Path

from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.models import Ticket


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--languages", default="de,es,fr,pt")
    parser.add_argument("--limit", type=int, default=300, help="rows per language at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    wanted = args.languages.split(",")
    with args.file.open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["language"] in wanted]
    random.Random(args.seed).shuffle(rows)  # noqa: S311  # a sample, not a secret
    config = load_config()
    pipeline = build_pipeline(config, embedder=MiniLMEmbedder.load())
    taken: Counter[str] = Counter()
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        language = row["language"]
        if taken[language] >= args.limit:
            continue
        taken[language] += 1
        text = f"{row['subject']}\n{row['body']}".strip()
        triage = await pipeline.triage(Ticket(text=text))
        decision = triage.decision
        counts = stats[language]
        counts["n"] += 1
        counts["detected_same"] += decision.language == language
        counts["detected_en"] += decision.language == "en"
        right = decision.category == row["category_proposed"]
        counts["right"] += right
        counts["priority_right"] += decision.priority == row["priority"]
        if any("category from its words" in reason for reason in decision.reasons):
            counts["from_words"] += 1
            counts["from_words_right"] += right
        codes = {reason.code for reason in triage.escalation.reasons}
        counts["unsupported_language"] += "unsupported_language" in codes
        if triage.escalation.needs_human:
            counts["human"] += 1
        else:
            counts["confident"] += 1
            counts["confident_right"] += right
    print("lang     n  detected=col  detected=en  to_human  language_reason  confident  "
          "confident_right  category_right  from_words  from_words_right"
          "  priority_right")  # fmt: skip
    for language in wanted:
        c = stats[language]
        n = c["n"] or 1
        confident = c["confident"] or 1
        from_words = c["from_words"] or 1
        print(
            f"{language:4} {c['n']:5}  {c['detected_same'] / n:12.3f}  {c['detected_en'] / n:11.3f}"
            f"  {c['human'] / n:8.3f}  {c['unsupported_language'] / n:15.3f}"
            f"  {c['confident'] / n:9.3f}  {c['confident_right'] / confident:15.3f}"
            f"  {c['right'] / n:14.3f}  {c['from_words'] / n:10.3f}"
            f"  {c['from_words_right'] / from_words:16.3f}  {c['priority_right'] / n:14.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
