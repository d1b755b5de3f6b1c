"""The `triage` command line: classify, eval and run."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TextIO

from threadpoolctl import threadpool_limits

from bot.compose import load_embedder, make_pipeline
from bot.logs import LOG_FORMAT, WithheldMessageFormatter
from bot.render import UNSURE_BELOW, unsure_note
from bot.runner import run_slack
from bot.sandbox.shell import run_sandbox
from bot.settings import Settings, load_settings
from bot.terminal import show_emoji
from routing.cascade import Pipeline, build_pipeline
from routing.config import TriageConfig, default_config_path, load_config
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
from routing.models import DECIDED_BY, LabeledExample, Ticket, Triage
from routing.redact import shown_to_agents
from routing.replay import format_replay, replay_corrections

logger = logging.getLogger("triage")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage", description="Triage support messages: classify, route, draft."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser("classify", help="classify texts (or stdin lines)")
    classify.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="tickets, one per argument; else one ticket per line of stdin",
    )
    classify.add_argument("--json", action="store_true", help="one JSON object per ticket")
    classify.add_argument("--config", type=Path, help="taxonomy and policy TOML file")

    evaluation = commands.add_parser("eval", help="measure the classifier on a labeled file")
    evaluation.add_argument("file", type=Path, help="labeled CSV or JSONL")
    evaluation.add_argument("--config", type=Path, help="taxonomy and policy TOML file")
    evaluation.add_argument(
        "--text-col", default="text", help="column holding the ticket text (default: text)"
    )
    evaluation.add_argument(
        "--label-col",
        help="column holding the expected label (default: the --field's name, e.g. category)",
    )
    evaluation.add_argument(
        "--split-col", help="column naming each row's split (default: split, if present)"
    )
    evaluation.add_argument(
        "--train-split",
        default="train",
        help="split(s) --shots draws examples from, comma-separated (default: train)",
    )
    evaluation.add_argument(
        "--test-split",
        default="test",
        help="split(s) to measure on, comma-separated (default: test)",
    )
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
        help="which decision the label column holds (default category); with --shots, its labels "
        "become that field's labels",
    )
    evaluation.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="keep only rows where COLUMN equals VALUE (repeatable)",
    )
    evaluation.add_argument("--json", action="store_true", help="print a JSON summary")
    evaluation.add_argument(
        "--priority-col",
        metavar="COLUMN",
        help="column holding each row's priority label, measured beside --label-col "
        "(default: priority, if present; --replay-corrections only)",
    )
    evaluation.add_argument(
        "--sentiment-col",
        metavar="COLUMN",
        help="column holding each row's sentiment label (default: sentiment, if present; "
        "--replay-corrections only)",
    )
    evaluation.add_argument(
        "--replay-corrections",
        action="store_true",
        help="replay the rows in order, correcting each wrong decision as an agent would, and "
        "print the learning curve",
    )
    evaluation.add_argument(
        "--window",
        type=_positive_int,
        default=100,
        help="rows per window of the learning curve (default 100)",
    )
    evaluation.add_argument(
        "--seed", type=int, help="shuffle the rows with this seed before replaying them"
    )
    evaluation.add_argument(
        "--limit",
        type=_positive_int,
        help="use only the first N rows (replayed, or tested) after filtering and shuffling",
    )

    init = commands.add_parser(
        "init-config",
        help="write a copy of the default config and its examples into DIR, to edit",
    )
    init.add_argument("directory", metavar="DIR", help="created if missing")

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
    run.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append each Web API call the bot makes to FILE as a JSON line (text, no blocks)",
    )
    return parser


def _version() -> str:
    try:
        return version("slack-triage-bot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


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
    emoji = show_emoji(config.priority(decision.priority).emoji)
    lines = [
        f"{emoji} {decision.priority.upper()} category {decision.category} -> team {decision.team} "
        f"(sentiment {decision.sentiment}, confidence {decision.confidence:.2f}, "
        f"decided by {DECIDED_BY[decision.source]})"
        + unsure_note(decision.unsure_fields(UNSURE_BELOW)),
        f"  ticket: {shown_to_agents(triage.ticket.text)[:200]}",
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
    texts = [text for text in args.texts if text.strip()] if args.texts else _stdin_lines()
    if not texts:
        raise UserError(
            "nothing to classify: give the ticket text as arguments, or pipe lines on stdin"
        )
    await _classify_texts(pipeline, texts, as_json=args.json, out=sys.stdout)
    return 0


async def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(settings, args.config)
    # `--field priority` on a file with a `priority` column needs no --label-col as well.
    args.label_col = args.label_col or args.field
    if args.replay_corrections:
        return await _cmd_replay(args, config)
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
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(report.summary_json(), ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


def _init_config(args: argparse.Namespace) -> int:
    source = default_config_path()
    config = load_config(source)
    # The config names its examples relative to itself: copy both, so the copy stands alone.
    files = [source, config.examples_path]
    if not args.directory.strip():
        raise UserError("init-config needs a directory to write into: triage init-config DIR")
    target = Path(args.directory)
    clashes = [target / file.name for file in files if (target / file.name).exists()]
    if clashes:
        raise UserError(
            f"{clashes[0]} exists already: choose an empty directory, or move the file away"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copyfile(file, target / file.name)
    except OSError as error:
        raise UserError(f"cannot write into {target}: {error.strerror}") from None
    print(
        f"wrote {target / source.name} and {target / config.examples_path.name}\n"
        f"edit them, then use them with --config {target / source.name} "
        f"(or TRIAGE_CONFIG={target / source.name} in .env)"
    )
    return 0


async def _cmd_replay(args: argparse.Namespace, config: TriageConfig) -> int:
    if args.shots is not None:
        raise UserError("--replay-corrections starts from the config's own examples: drop --shots")
    named = {"priority": args.priority_col, "sentiment": args.sentiment_col}
    rows = load_dataset(
        args.file,
        text_col=args.text_col,
        label_col=args.label_col,
        split_col=None,
        where=parse_where(args.where),
        extra_cols={f: col for f, col in named.items() if col is not None and f != args.field},
        optional_extra_cols={f: f for f, col in named.items() if col is None and f != args.field},
    )
    embedder = load_embedder()
    if embedder is None:
        raise UserError("evaluation needs the local model: run `make install`")
    pipeline = build_pipeline(config, embedder=CachingEmbedder(embedder))
    report = await replay_corrections(
        rows,
        config=config,
        pipeline=pipeline,
        field=args.field,
        window=args.window,
        seed=args.seed,
        limit=args.limit,
        progress=ProgressBar(label="replaying", stream=sys.stderr),
    )
    if args.json:
        print(json.dumps(report.summary_json(), ensure_ascii=False))
    else:
        print(format_replay(report))
    return 0


async def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(settings, args.config)
    if settings.connects_to_slack:
        try:
            await run_slack(settings, config, http=args.http, port=args.port, record=args.record)
        except asyncio.CancelledError:
            print("triage: stopped", file=sys.stderr)  # SIGTERM: a clean stop, not a failure
        return 0
    if args.http:
        raise UserError("setting SLACK_BOT_TOKEN: missing; --http serves a real workspace")
    return await run_sandbox(settings, config, stdin=sys.stdin, out=sys.stdout, record=args.record)


# Loggers of libraries that write request and response bodies (customer text, tokens) at DEBUG.
LIBRARY_LOGGERS = (
    "slack_sdk",
    "slack_bolt",
    "aiosqlite",
    "psycopg",
    "openai",
    "httpx",
    "httpcore",
    # openai 3's own HTTP stack: its DEBUG lines are every request's and response's headers.
    "httpx2",
    "httpcore2",
    "aiohttp",
    "asyncio",
    "urllib3",
)


def configure_logging(settings: Settings) -> None:
    """The bot's log level for its own loggers; libraries at INFO at the most verbose."""
    logging.basicConfig(format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(WithheldMessageFormatter(LOG_FORMAT))
    # Set apart from basicConfig, which changes nothing when the root already has a handler.
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_library_debug:
        return
    floor = max(logging.INFO, logging.getLevelName(settings.log_level))
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(floor)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one clear line and exit 2, never a traceback."""
    args = _parser().parse_args(argv)
    # The classifier's matrices are small (hundreds of rows by 384 columns) and the workers run
    # several tickets at once: with OpenBLAS's default of one thread per core, its threads wait
    # for each other on a busy 2-core machine and the small matrix work ran 5-17x slower than
    # with one thread. One BLAS thread per call, set once for the whole process.
    threadpool_limits(limits=1)
    try:
        settings = load_settings()
        configure_logging(settings)
        if args.command == "init-config":
            return _init_config(args)
        commands = {
            "classify": _cmd_classify,
            "eval": _cmd_eval,
            "run": _cmd_run,
        }
        return asyncio.run(commands[args.command](args, settings))
    except UserError as error:
        print(f"triage: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `triage classify ... | head -1`: the reader has gone, which is no error to show.
        _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail on the pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # a stdout with no descriptor of its own (a test's) has nothing left to flush


if __name__ == "__main__":
    sys.exit(main())
