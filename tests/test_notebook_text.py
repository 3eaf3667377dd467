"""What the notebooks' text says: headings are Markdown, and lesson 10's figures come from its run."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))
LESSON_10 = ROOT / "notebooks" / "10-performance-and-scale.ipynb"

# `# ## Heading` or `# # Heading`: a Markdown heading pasted into a code cell as a comment.
# (`### BEGIN SOLUTION` has no space after its first `#`, and is not one.)
HEADING_COMMENT = re.compile(r"^\s*#\s+#{1,6}\s+\S")

# A figure in prose: a ratio (1.7×, 2–6×, 5x), a percentage, or microseconds.
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?(?:[×x](?!\w)|\s?%|\s?µs)")

# Figures lesson 10 quotes from elsewhere, to compare with the learner's own; each with its source.
QUOTED = {
    "5x": 'asyncpg\'s README: "in our testing asyncpg is, on average, 5x faster than psycopg3"',
}


def _text(output: dict) -> str:
    text = output.get("text") or output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_headings_are_markdown_cells(path: Path) -> None:
    """A heading written as a comment at the end of a code cell is missing from the table of
    contents and reads as code: make it a Markdown cell."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            assert not HEADING_COMMENT.match(line), \
                f"{path.name} cell {index}: {line.strip()!r} is a heading: put it in a Markdown cell"


def test_heading_comment_pattern() -> None:
    assert HEADING_COMMENT.match("# ## 5 · Pitfall") and HEADING_COMMENT.match("  # # Title")
    assert not HEADING_COMMENT.match("### BEGIN SOLUTION")
    assert not HEADING_COMMENT.match("# a comment about #2")


def test_lesson_10_prose_figures_come_from_its_run() -> None:
    """Every ratio, percentage or µs figure in lesson 10's prose is printed by a cell whose output
    the tests compare (so it holds on every run), or is a figure quoted from elsewhere."""
    cells = nbformat.read(LESSON_10, as_version=4).cells
    compared = "\n".join(_text(o) for c in cells if c.cell_type == "code"
                         and "nbval-ignore-output" not in c.metadata.get("tags", [])
                         for o in c.get("outputs", []))
    unexplained = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"`[^`]*`", "", cell.source)  # code spans are code, not claims
        for figure in FIGURE.findall(prose):
            if figure not in QUOTED and figure.replace("×", "x") not in compared:
                unexplained.append(f"cell {index}: {figure}")
    assert not unexplained, ("figures in lesson 10's prose that no compared output prints (runs change "
                             f"them; print them beside the prose, or state an ordering a cell asserts): {unexplained}")
    assert "when this lesson was written" not in " ".join(c.source for c in cells).lower()


def test_figure_pattern() -> None:
    found = FIGURE.findall("Core 1.5–2.0×, ORM 5.7x, 60% and 50–250 µs; λ × W, 200 / 15 × 50 ms, 3.11")
    assert found == ["1.5–2.0×", "5.7x", "60%", "50–250 µs"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_ratio_below_one_reads_as_faster(path: Path) -> None:
    """"0.9x faster" means slower: a stored output says "faster" or "slower" from the ratio."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for output in cell.get("outputs", []):
            for ratio in re.findall(r"(\d+(?:\.\d+)?)\s?[×x] (?:faster|slower)", _text(output)):
                assert float(ratio) >= 1, f"{path.name} cell {index}: {ratio}x reads the wrong way round"


def test_check_and_explain_lines_as_markdown() -> None:
    """The ✅/❌/⏳/💡 lines are displayed as Markdown (which wraps between words): `code` stays
    code, and every other sign Markdown would read shows as typed."""
    from course.display import markdown_line

    line = "⏳ q1 not attempted yet: replace `raise NotImplementedError` in top_artists with your code."
    assert markdown_line(line) == line.replace("top_artists", r"top\_artists")
    assert markdown_line("❌ q2: a*b <b> [x](y) a|b ~c & d") == r"❌ q2: a\*b \<b\> \[x\](y) a\|b \~c \& d"
    assert markdown_line("💡 `a_b` and ``x`y``, a lone ` tick") == r"💡 `a_b` and ``x`y``, a lone \` tick"
