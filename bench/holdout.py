"""A second hand-written check set, written apart from the examples and never tuned on.

bench/data/holdout_tickets.jsonl: 92 tickets written for this product (not from any public data
set), each with category, priority, sentiment and a kind: outage, dataloss, security (must page
a human), question (never high or critical), noise (thanks, "ok": must page nobody), vague, multi
(two asks: `teams` lists both), ordinary. It runs `triage classify --json` as a user would.

    .venv/bin/python bench/holdout.py [--config FILE] [--file FILE] [--errors]

--file bench/data/dev_tickets.jsonl runs the dev set (91 tickets in the same format, written to
tune on, so that this holdout stays a measurement).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRIAGE = HERE.parent / ".venv" / "bin" / "triage"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="taxonomy and policy TOML file")
    parser.add_argument(
        "--file", type=Path, default=HERE / "data" / "holdout_tickets.jsonl", help="JSONL tickets"
    )
    parser.add_argument("--errors", action="store_true", help="list every wrong field")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.file.read_text("utf-8").splitlines() if line.strip()]
    command = [
        str(TRIAGE),
        "classify",
        "--json",
        *(["--config", args.config] if args.config else []),
    ]
    texts = [row["text"] for row in rows]
    # A ticket with line breaks (a forwarded email, a signature) goes as an argument: stdin
    # holds one ticket per line.
    multiline = any("\n" in text for text in texts)
    done = subprocess.run(  # noqa: S603  # our own command line, with our own arguments
        [*command, *texts] if multiline else command,
        input=None if multiline else "\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    pairs = list(zip(rows, results, strict=True))

    def share(kinds: tuple[str, ...], test: str) -> str:
        chosen = [(row, got) for row, got in pairs if row["kind"] in kinds]
        hits = sum(
            {
                "paged": got["needs_human"],
                "high": got["priority"] in ("high", "critical"),
                "both": set(row.get("teams", ())) <= set(got["teams"]),
            }[test]
            for row, got in chosen
        )
        return f"{hits}/{len(chosen)}"

    ordinary = [
        (row, got)
        for row, got in pairs
        if row["kind"] in ("ordinary", "question") and row["priority"] in ("low", "medium")
    ]
    summary = {
        "n": len(rows),
        **{
            f"{field}_accuracy": round(
                sum(row[field] == got[field] for row, got in pairs) / len(rows), 3
            )
            for field in ("category", "priority", "sentiment")
        },
        "severe_paged": share(("outage", "dataloss", "security"), "paged"),
        "questions_high_or_critical": share(("question",), "high"),
        "ordinary_to_human": f"{sum(got['needs_human'] for _, got in ordinary)}/{len(ordinary)}",
        "noise_paged": share(("noise",), "paged"),
        "multi_both_teams": share(("multi",), "both"),
    }
    print(json.dumps(summary, indent=2))
    if args.errors:
        for row, got in pairs:
            wrong = [
                f"{field} {got[field]} (not {row[field]})"
                for field in ("category", "priority", "sentiment")
                if got[field] != row[field]
            ]
            if wrong:
                print(f"  {row['text'][:70]!r}: {', '.join(wrong)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
