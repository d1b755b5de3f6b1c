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

from bot.settings import Settings, load_settings
from routing.cascade import LLMLayer, Pipeline, build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding import (
    Embedder,
    EmbeddingModelCorruptError,
    EmbeddingModelMissingError,
    MiniLMEmbedder,
)
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
from routing.llm import LLMClassifier, build_openai_client
from routing.models import LabeledExample, Ticket, Triage

logger = logging.getLogger("triage")

SAMPLE_TICKETS = Path(__file__).resolve().parent.parent / "routing" / "defaults" / "samples.txt"


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

    run = commands.add_parser("run", help="start the bot")
    run.add_argument("--config", type=Path, help="taxonomy and policy TOML file")
    return parser


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _load_embedder() -> Embedder | None:
    try:
        return MiniLMEmbedder.load()
    except (EmbeddingModelMissingError, EmbeddingModelCorruptError) as error:
        # Said once, at start-up; every ticket is then marked for a human.
        print(f"warning: {error}\nContinuing with keyword rules only.", file=sys.stderr)
        return None


def _llm_layer(settings: Settings, config: TriageConfig) -> LLMLayer | None:
    if settings.openai_api_key is None or config.llm.cheap_model is None:
        return None
    client = build_openai_client(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or config.llm.base_url,
        timeout_seconds=config.llm.timeout_seconds,
        max_retries=config.llm.max_retries,
    )
    return LLMClassifier(client=client, config=config)


def _config(settings: Settings, path: Path | None) -> TriageConfig:
    return load_config(path or settings.triage_config)


def _format_human(triage: Triage, config: TriageConfig) -> str:
    decision = triage.decision
    emoji = config.priority(decision.priority).emoji
    lines = [
        f"{emoji} {decision.priority.upper()} {decision.category} -> {decision.team} "
        f"({decision.sentiment}, confidence {decision.confidence:.2f}, by {decision.source})",
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
    pipeline = build_pipeline(config, embedder=_load_embedder(), llm=_llm_layer(settings, config))
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
    embedder = _load_embedder()
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
    # The Slack edge is the next piece of work; until then `run` triages the sample tickets.
    config = _config(settings, args.config)
    print(
        "The Slack bot is not built yet; triaging the sample tickets offline instead.\n",
        file=sys.stderr,
    )
    pipeline = build_pipeline(config, embedder=_load_embedder(), llm=_llm_layer(settings, config))
    texts = [line for line in SAMPLE_TICKETS.read_text(encoding="utf-8").splitlines() if line]
    await _classify_texts(pipeline, texts, as_json=False, out=sys.stdout)
    return 0


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
