"""The offline default on hand-written tickets: every field, paging, questions, humans, AUROC.

bench/data/handwritten_tickets.jsonl holds tickets written for this benchmark (not the shipped
examples, not any public data set), each with category, priority and sentiment labels and a
`kind`: outage, data_loss, security, company_blocked (each must page a human), question (never
high or critical), thanks, or empty for an ordinary ticket.

    .venv/bin/python bench/handwritten.py [--config FILE] [--file FILE] [--errors] [--json]

Targets (issue 10): every severe ticket paged; no plain question high or critical; category
>= 0.90, priority >= 0.80, sentiment >= 0.70; at most 20% of ordinary tickets to a human.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routing.cascade import build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding import Embedder, MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.models import CONFIDENCE_FIELDS, Ticket, Triage

HERE = Path(__file__).resolve().parent
DEFAULT_FILE = HERE / "data" / "handwritten_tickets.jsonl"
SEVERE = {"outage", "data_loss", "security", "company_blocked"}
FIELDS = ("category", "priority", "sentiment", "team")
SWEPT = ("accuracy", "severe_paged", "questions_high_or_critical", "ordinary_to_human", "auroc")


@dataclass(frozen=True)
class Row:
    """One labeled ticket and what the pipeline made of it."""

    labels: dict[str, str]
    kind: str
    triage: Triage

    def right(self, field: str) -> bool:
        """Did the decision get this field right."""
        return str(getattr(self.triage.decision, field)) == self.labels[field]


def load_rows(path: Path, config: TriageConfig) -> list[dict[str, str]]:
    """The labeled tickets, with the team their category's default team."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row.setdefault("team", config.team_for(row["category"]))
            rows.append(row)
    return rows


async def run(path: Path, config: TriageConfig, embedder: Embedder) -> list[Row]:
    """Triage every ticket of the file with the offline default pipeline."""
    pipeline = build_pipeline(config, embedder=embedder)
    out = []
    for row in load_rows(path, config):
        triage = await pipeline.triage(Ticket(text=row["text"]))
        labels = {field: row[field] for field in FIELDS if field in row}
        out.append(Row(labels=labels, kind=row.get("kind", ""), triage=triage))
    return out


def auroc(scores: Sequence[float], right: Sequence[bool]) -> float | None:
    """Probability that a random right answer has a higher confidence than a random wrong one."""
    values = np.asarray(scores, dtype=np.float64)
    good = np.asarray(right, dtype=bool)
    n_pos, n_neg = int(good.sum()), int((~good).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # Ties count half: average ranks.
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[good].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def summary(rows: Sequence[Row], config: TriageConfig) -> dict[str, object]:
    """Every figure the targets name, plus AUROC per field and the priority confusion matrix."""
    accuracy = {
        field: round(float(np.mean([row.right(field) for row in rows])), 3) for field in FIELDS
    }
    severe = [row for row in rows if row.kind in SEVERE]
    questions = [row for row in rows if row.kind == "question"]
    ordinary = [row for row in rows if row.kind not in SEVERE]
    top = config.priority_names[-2:]
    missed = [
        row.labels["category"] + ": " + row.triage.ticket.text[:70]
        for row in severe
        if not row.triage.escalation.needs_human
    ]
    auc = {
        field: auroc(
            [row.triage.decision.confidence_of(field) for row in rows],
            [row.right(field) for row in rows],
        )
        for field in CONFIDENCE_FIELDS
    }
    confusion: dict[str, dict[str, int]] = {
        label: dict.fromkeys(config.priority_names, 0) for label in config.priority_names
    }
    for row in rows:
        confusion[row.labels["priority"]][row.triage.decision.priority] += 1
    reasons = Counter(reason.code for row in ordinary for reason in row.triage.escalation.reasons)
    return {
        "n": len(rows),
        "accuracy": accuracy,
        "severe_paged": f"{len(severe) - len(missed)}/{len(severe)}",
        "severe_missed": missed,
        "questions_high_or_critical": sum(row.triage.decision.priority in top for row in questions),
        "questions": len(questions),
        "ordinary_to_human": round(
            float(np.mean([row.triage.escalation.needs_human for row in ordinary])), 3
        ),
        "ordinary_reasons": dict(reasons.most_common()),
        "auroc": {
            field: None if value is None else round(value, 3) for field, value in auc.items()
        },
        "priority_confusion (rows: label, columns: predicted)": confusion,
    }


def variant(
    config: TriageConfig, *, cue_weight: float, min_similarity: float | None
) -> TriageConfig:
    """The config with another cue weight and min_similarity on its most urgent priority."""
    top = config.priorities[-1].model_copy(update={"min_similarity": min_similarity})
    return config.model_copy(
        update={
            "thresholds": config.thresholds.model_copy(update={"cue_weight": cue_weight}),
            "priorities": (*config.priorities[:-1], top),
        }
    )


def sweep(path: Path, config: TriageConfig, embedder: Embedder) -> None:
    """One line of figures per cue weight and min_similarity of the most urgent priority."""
    cached = CachingEmbedder(embedder)
    for cue_weight in (0.0, 0.3, 0.5, 0.7, 1.0):
        for min_similarity in (None, 0.6, 0.7):
            changed = variant(config, cue_weight=cue_weight, min_similarity=min_similarity)
            figures = summary(asyncio.run(run(path, changed, cached)), changed)
            print(
                json.dumps(
                    {
                        "cue_weight": cue_weight,
                        "min_similarity": min_similarity,
                        **{key: figures[key] for key in SWEPT},
                    }
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--errors", action="store_true", help="list every wrong field")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="compare cue weights and the most urgent priority's min_similarity instead",
    )
    args = parser.parse_args()
    config = load_config(args.config)
    embedder = MiniLMEmbedder.load()
    if args.sweep:
        sweep(args.file, config, embedder)
        return
    rows = asyncio.run(run(args.file, config, embedder))
    if args.errors:
        for row in rows:
            decision = row.triage.decision
            wrong = [
                f"{field} {getattr(decision, field)} (want {row.labels[field]}, "
                f"{decision.confidence_of(field):.2f})"
                for field in ("category", "priority", "sentiment")
                if not row.right(field)
            ]
            if wrong:
                print(f"- {row.triage.ticket.text[:90]!r}\n    " + "; ".join(wrong))
    print(json.dumps(summary(rows, config), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
