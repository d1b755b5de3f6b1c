"""The `triage` command line: classify, eval and run."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bot.render import UNSURE_BELOW, unsure_note
from bot.runner import load_embedder, make_pipeline, run_slack
from bot.sandbox.shell import run_sandbox
from bot.settings import Settings, load_settings
from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from routing.errors import UserError
from routing.evaluation import (
    EVAL_FIELDS,
    ProgressBar,
    evaluate,
    format_report,
    load_dataset,
    parse_where,
)
from routing.models import LabeledExample, Ticket, Triage

logger = logging.getLogger("triage")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage", description="Triage support messages: classify, route, draft."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser("classify", help="classify texts (or stdin lines)")
    classify.add_argument("texts", nargs="*", metavar="TEXT", help="tickets; stdin when none")
    classify.add_argument("--json", action="store_true", help="one JSON object per ticket")
    classify.add_argument("--config", type=Path, help="taxonomy and policy TOML file")

    evaluation = commands.add_parser("eval", help="measure the classifier on a labeled file")
    evaluation.add_argument("file", type=Path, help="labeled CSV or JSONL")
    evaluation.add_argument("--config", type=Path, help="taxonomy and policy TOML file")
    evaluation.add_argument("--text-col", default="text")
    evaluation.add_argument("--label-col", default="category")
    evaluation.add_argument(
        "--split-col", help="column naming each row's split (default: split, if present)"
    )
    evaluation.add_argument("--train-split", default="train")
    evaluation.add_argument("--test-split", default="test")
    evaluation.add_argument(
        "--shots", type=_positive_int, help="draw K examples per label from the train split"
    )
    evaluation.add_argument(
        "--shots-by",
        metavar="COLUMN",
        help="draw the K examples per value of COLUMN instead of per label (e.g. intent)",
    )
    evaluation.add_argument("--seeds", type=_positive_int, default=1, help="repeat over N seeds")
    evaluation.add_argument(
        "--field",
        choices=EVAL_FIELDS,
        default="category",
        help="which decision the label column holds (priority, sentiment, team: no --shots)",
    )
    evaluation.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="keep only rows where COLUMN equals VALUE (repeatable)",
    )
    evaluation.add_argument("--json", action="store_true", help="print a JSON summary")

    run = commands.add_parser(
        "run", help="start the bot (the local sandbox when no Slack token is set)"
    )
    run.add_argument("--config", type=Path, help="taxonomy and policy TOML file")
    run.add_argument(
        "--http",
        action="store_true",
        help="serve the Events API over HTTP (needs SLACK_SIGNING_SECRET) instead of Socket Mode",
    )
    run.add_argument("--port", type=_port, default=3000, help="HTTP port (default 3000)")
    return parser


def _port(value: str) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _config(settings: Settings, path: Path | None) -> TriageConfig:
    return load_config(path or settings.triage_config)


def _format_human(triage: Triage, config: TriageConfig) -> str:
    decision = triage.decision
    emoji = config.priority(decision.priority).emoji
    lines = [
        f"{emoji} {decision.priority.upper()} {decision.category} -> {decision.team} "
        f"({decision.sentiment}, confidence {decision.confidence:.2f}, by {decision.source})"
        + unsure_note(decision.unsure_fields(UNSURE_BELOW)),
        f"  ticket: {triage.ticket.text[:200]}",
    ]
    if triage.escalation.needs_human:
        reasons = "; ".join(reason.detail for reason in triage.escalation.reasons)
        lines.append(f"  needs a human: {reasons}")
        if len(triage.escalation.teams) > 1:
            lines.append(f"  notify teams: {', '.join(triage.escalation.teams)}")
    draft = triage.draft.text.replace("\n", "\n         ")
    lines.append(f"  draft: {draft}")
    return "\n".join(lines)


async def _classify_texts(
    pipeline: Pipeline, texts: Sequence[str], *, as_json: bool, out: TextIO
) -> None:
    for text in texts:
        triage = await pipeline.triage(Ticket(text=text))
        if as_json:
            out.write(json.dumps(triage.summary(), ensure_ascii=False) + "\n")
        else:
            out.write(_format_human(triage, pipeline.config) + "\n\n")
        out.flush()


def _stdin_lines() -> list[str]:
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


async def _cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(settings, args.config)
    pipeline = make_pipeline(settings, config)
    texts = list(args.texts) if args.texts else _stdin_lines()
    await _classify_texts(pipeline, texts, as_json=args.json, out=sys.stdout)
    return 0


async def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(settings, args.config)
    rows = load_dataset(
        args.file,
        text_col=args.text_col,
        label_col=args.label_col,
        split_col=args.split_col or "split",
        where=parse_where(args.where),
        # A split column the user named must exist; the default one is optional.
        split_required=args.split_col is not None,
        group_col=args.shots_by,
    )
    embedder = load_embedder()
    if embedder is None:
        raise UserError("evaluation needs the local model: run `make install`")
    # Texts repeat across seeds (the test split) and shots: embed each once.
    cached = CachingEmbedder(embedder)

    def make_pipeline(eval_config: TriageConfig, examples: list[LabeledExample]) -> Pipeline:
        return build_pipeline(eval_config, embedder=cached, examples=examples)

    progress = ProgressBar(stream=sys.stderr)
    report = await evaluate(
        rows,
        config=config,
        make_pipeline=make_pipeline,
        shots=args.shots,
        seeds=args.seeds,
        train_split=args.train_split,
        test_split=args.test_split,
        progress=progress,
        field=args.field,
    )
    if args.json:
        print(json.dumps(report.summary_json(), ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


async def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(settings, args.config)
    if settings.connects_to_slack:
        try:
            await run_slack(settings, config, http=args.http, port=args.port)
        except asyncio.CancelledError:
            print("triage: stopped", file=sys.stderr)  # SIGTERM: a clean stop, not a failure
        return 0
    if args.http:
        raise UserError("setting SLACK_BOT_TOKEN: missing; --http serves a real workspace")
    return await run_sandbox(settings, config, stdin=sys.stdin, out=sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one clear line and exit 2, never a traceback."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        commands = {"classify": _cmd_classify, "eval": _cmd_eval, "run": _cmd_run}
        return asyncio.run(commands[args.command](args, settings))
    except UserError as error:
        print(f"triage: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
