"""What a learner sees: stored outputs, hints and solutions, the progress table, progress bars."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from course import display
from course.tools import workbooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb"))


def _texts(output: dict) -> list[str]:
    data = output.get("data", {})
    texts = [output.get("text", "")] + [data.get(kind, "") for kind in ("text/plain", "text/markdown")]
    return ["".join(t) if isinstance(t, list) else t for t in texts if t]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_progress_tables_show_a_new_learner(path: Path) -> None:
    """Nobody's progress ships: a stored progress table shows every exercise not attempted."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for output in cell.get("outputs", []):
            for text in _texts(output):
                if "exercises correct." not in text:
                    continue
                where = f"{path.name} cell {index}"
                assert re.search(r"\b0 of \d+ exercises correct", text), f"{where} ships someone's progress"
                assert not re.search(r"✅ correct|❌ wrong|⚠️ error", text), f"{where} ships someone's progress"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_stored_output_needs_a_live_widget(path: Path) -> None:
    """A widget output shows "Error displaying widget" once its kernel is gone: store text."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), \
                f"{path.name} cell {index} stores a widget; use course.bar.tqdm, which leaves text"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state no output uses"


def test_progress_table_aligns_by_display_width(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "p.json"))
    (tmp_path / "p.json").write_text(json.dumps({"00.q1": {"status": "correct"}, "00.q2": {"status": "wrong"},
                                                 "00.q3": {"status": "error"}}))
    table = workbooks.progress_table()
    rows = str(table).splitlines()[2:2 + len(workbooks.all_exercises())]
    # the function column starts at the same display column on every row, whatever the icon
    columns = {workbooks.width(row[:row.index(f"  {ex.function}  ") + 2])
               for row, ex in zip(rows, workbooks.all_exercises(), strict=True)}
    assert len(columns) == 1, rows[:4]
    assert workbooks.width("✅ correct") == 10 and workbooks.width("⚠️ error") == 8
    markdown = table._repr_markdown_()
    assert markdown.startswith("| lesson | exercise | state | function | what it asks |")
    assert "| 00 | q1 | ✅ correct | mmss |" in markdown
    assert "1 of " in markdown


def test_hint_and_solution_show_markdown_with_the_one_line_text(monkeypatch) -> None:
    """In JupyterLab: Markdown with a heading; the text/plain stays the line nbval compares."""
    from IPython.core.formatters import DisplayFormatter

    from course.lessons import l00_welcome

    shown = []
    monkeypatch.setattr(display, "in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(DisplayFormatter().format(obj)[0]))
    l00_welcome.q1.hint()
    l00_welcome.q1.hint(99)
    l00_welcome.q1.solution()
    hint, last, solution = shown
    assert hint["text/plain"].startswith("💬 q1 hint 1/3: ") and hint["text/plain"].endswith("(next: .hint(2))")
    assert "\n" not in hint["text/plain"]
    assert hint["text/markdown"].startswith("#### 💬 q1 · hint 1 of 3\n\n")
    assert "`ex.q1.hint(2)`" in hint["text/markdown"]
    assert "ex.q1.solution()" in last["text/markdown"]
    assert solution["text/plain"].startswith("def mmss(milliseconds: int) -> str:")
    assert solution["text/markdown"].startswith("#### 📖 q1 · reference solution for `mmss`\n\n```python\ndef mmss(")
    assert solution["text/markdown"].endswith("\n```")


def test_outside_a_kernel_hints_print_plain_text(capsys) -> None:
    from course.lessons import l00_welcome

    l00_welcome.q1.hint(3)
    assert capsys.readouterr().out.startswith("💬 q1 hint 3/3: ")


def test_a_finished_bar_is_stored_as_text(tmp_path) -> None:
    """course.bar.tqdm in a real kernel: a widget while it runs, a line of text when closed."""
    from course.tools.build import execute

    path = tmp_path / "bar.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from course.bar import tqdm\n"
        "bar = tqdm(range(1000), total=1000, desc='COPY', unit='row')\n"
        "for _ in bar:\n    pass\n"
        "bar.close()")]
    nbformat.write(nb, path)
    execute(path, timeout=120)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"]
    assert list(outputs[0].data) == ["text/plain"]
    assert outputs[0].data["text/plain"].startswith("COPY: 100%|██████████| 1000/1000 [")
    assert "widgets" not in nbformat.read(path, as_version=4).metadata


def test_a_copy_of_the_course_records_its_workbooks_only(tmp_path, monkeypatch) -> None:
    """JupyterLab serving a copy of the course (the browser test does): lessons don't record."""
    from course.checking import progress

    for folder in ("notebooks", "exercises", "solutions"):
        (tmp_path / "copy" / folder).mkdir(parents=True)
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "p.json"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "copy" / "notebooks" / "00-welcome.ipynb"))
    progress.record("00", "q1", "wrong")
    assert progress.load() == {}
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "copy" / "exercises" / "00-welcome-workbook.ipynb"))
    progress.record("00", "q1", "correct")
    assert progress.load()["00.q1"]["status"] == "correct"
