"""Generated blocks inside hand-written files (README.md, benchmarks/RESULTS.md).

A block is the text between `<!-- figures:NAME -->` and `<!-- end figures:NAME -->`, written by a
script from the committed records, so that a figure in prose cannot drift from the records that
give it: the script's write mode replaces each block's text, its check mode names every block
whose text differs (CI runs it). The prose around a block is the author's; where a block goes is
the author's choice, so a missing block is an error, never appended. A block may sit inside a
sentence (its text then has no line breaks) or hold whole lines (its text then starts and ends
with a line break). One mechanism for every such script: benchmarks/literature_checks.py (the
verdicts) and benchmarks/readme_figures.py (the figures).
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The comments that open and close block `name`: invisible in rendered Markdown."""
    return f"<!-- figures:{name} -->", f"<!-- end figures:{name} -->"


def span(text: str, name: str) -> tuple[int, int] | None:
    """Where block `name`'s text starts and ends in `text` (None when its markers are not both
    there, the end after the beginning)."""
    begin, end = markers(name)
    start = text.find(begin)
    stop = -1 if start < 0 else text.find(end, start)
    return None if stop < 0 else (start + len(begin), stop)


def stale(path: Path, blocks: dict[str, str], command: str) -> list[str]:
    """One line per block of `blocks` (name -> text) that `path` lacks or holds with other text,
    each naming the file, the block and `command`, which refreshes it."""
    text = path.read_text()
    problems = []
    for name, body in blocks.items():
        where = span(text, name)
        if where is None:
            problems.append(f"{path}: no block {name} (between {' and '.join(markers(name))})")
        elif text[where[0]:where[1]] != body:
            problems.append(f"{path}: block {name} is stale: run {command}")
    return problems


def write(path: Path, blocks: dict[str, str]) -> None:
    """Replace the text of every block of `blocks` in `path`; a block whose markers are missing
    raises ValueError before anything is written."""
    text = path.read_text()
    for name, body in blocks.items():
        where = span(text, name)
        if where is None:
            raise ValueError(f"{path}: no block {name} (between {' and '.join(markers(name))}) to refresh")
        text = text[:where[0]] + body + text[where[1]:]
    path.write_text(text)
