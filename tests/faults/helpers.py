"""Helpers of the fault suite: one-line user errors, and a scan for partial or unversioned files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from concept_saliency.errors import UserError


def expect_user_error(fn, *must_contain: str, error=UserError, **kwargs) -> str:
    """Call ``fn(**kwargs)``; it must raise ``error`` with one clear line holding every
    ``must_contain`` (a file name, a key, a line number, what to do). Returns the message."""
    with pytest.raises(error) as info:
        fn(**kwargs)
    message = str(info.value)
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    assert len(message) < 600, f"too long for one clear line: {message!r}"
    for part in must_contain:
        assert part.lower() in message.lower(), f"{part!r} not in {message!r}"
    return message


#: What may stay after a failure: logs, the training checkpoint (resumable on purpose) and a
#: download's .part (resumed by the next run).
_NO_PROVENANCE_NEEDED = re.compile(r"(^|/)(logs|checkpoint)/|\.log$")
_PARTIAL = re.compile(r"\.tmp[-.]|\.tmp$|\.part$|\.partial$|\.incomplete$")


def assert_no_partial_artifacts(root: Path, allow_part: bool = False) -> None:
    """Nothing under ``root`` is a partial write, and every artifact has its provenance record.

    A file beside which no ``.prov.json`` lies is an unversioned artifact: either a stage
    wrote it without finishing (its record is written last) or it was never versioned.
    """
    root = Path(root)
    if not root.exists():
        return
    problems = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if ".snakemake" in path.parts or path.is_dir():
            continue
        if _PARTIAL.search(path.name):
            if not (allow_part and path.name.endswith(".part")):
                problems.append(f"partial file left: {rel}")
            continue
        if path.name.endswith(".prov.json") or _NO_PROVENANCE_NEEDED.search(rel):
            continue
        # a file inside a directory artifact (e.g. raw/images/) is covered by the directory's record
        versioned = [p for p in (path, *path.parents) if p != root and root in p.parents
                     and p.with_name(p.name + ".prov.json").exists()]
        if not versioned:
            problems.append(f"unversioned artifact (no {path.name}.prov.json): {rel}")
    assert not problems, "\n".join(problems)


def first_line_error(text: str) -> list[str]:
    """Lines of a stage's stderr/log that report an error (``ERROR`` log records)."""
    return [line for line in text.splitlines() if " ERROR " in line]


def edit_line(path: Path, lineno: int, fn) -> Path:
    """Replace line ``lineno`` (1-based) of a text file by ``fn(line)``; returns the path."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")
    return path
