"""The default config copied to a test's folder with one edit: for config error tests."""

from __future__ import annotations

from pathlib import Path

from routing.config import default_config_path


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the default config (and its examples) with `old` replaced once by `new`."""
    source = default_config_path()
    text = source.read_text(encoding="utf-8")
    assert old in text, old
    (tmp_path / "examples.jsonl").write_text(
        (source.parent / "examples.jsonl").read_text(encoding="utf-8"), encoding="utf-8"
    )
    target = tmp_path / "config.toml"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return target
