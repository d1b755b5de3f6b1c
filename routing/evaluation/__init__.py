"""Measuring the classifier on a labeled data set: the engine behind `triage eval`.

datasets reads labeled files; labels turns a data set's labels into a taxonomy; run draws
examples, classifies and scores; report holds and renders the result; progress shows a long run.
"""

from routing.evaluation.datasets import LabeledRow, LabeledRows, load_dataset, parse_where
from routing.evaluation.labels import (
    EVAL_FIELDS,
    EvalField,
    category_names_for_labels,
    field_taxonomy_for_labels,
    label_words,
    sanitize_label,
    taxonomy_for_labels,
)
from routing.evaluation.progress import ProgressBar, ProgressCallback
from routing.evaluation.report import EvalReport, LabelMetrics, format_report
from routing.evaluation.run import PipelineFactory, PipelineLike, evaluate

__all__ = [
    "EVAL_FIELDS",
    "EvalField",
    "EvalReport",
    "LabelMetrics",
    "LabeledRow",
    "LabeledRows",
    "PipelineFactory",
    "PipelineLike",
    "ProgressBar",
    "ProgressCallback",
    "category_names_for_labels",
    "evaluate",
    "field_taxonomy_for_labels",
    "format_report",
    "label_words",
    "load_dataset",
    "parse_where",
    "sanitize_label",
    "taxonomy_for_labels",
]
