"""Progress, reset and verify, and the command-line front of them."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from course import paths, registry
from course.checking import progress
from course.errors import CourseError
from course.tools import cli, workbooks


@pytest.fixture
def course_copy(tmp_path, monkeypatch):
    """A private copy of the workbooks so reset can be tried for real."""
    for name in ("exercises", "solutions"):
        shutil.copytree(paths.ROOT / name, tmp_path / name)
    monkeypatch.setattr(registry, "EXERCISES", tmp_path / "exercises")  # where every lesson's files are named
    monkeypatch.setattr(registry, "SOLUTIONS", tmp_path / "solutions")
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "state"))
    return tmp_path


def test_reset_backs_up_then_restores(course_copy) -> None:
    book = course_copy / "exercises" / "00-welcome-workbook.ipynb"
    nb = nbformat.read(book, as_version=4)
    nb.cells[3].source = "def mmss(milliseconds: int) -> str:\n    return 'my work'"
    nbformat.write(nb, book)
    mine = book.read_bytes()
    progress.record("00", "q1", "correct")
    progress.record("01", "q1", "correct")
    target, backup = workbooks.reset("00")
    assert backup.read_bytes() == mine, "the learner's version is kept byte for byte"
    assert backup.parent == course_copy / "state" / "backups"
    assert target.read_bytes() == workbooks._as_shipped(target), "restored as committed"
    restored = nbformat.read(target, as_version=4)
    assert [o.status for o in workbooks.outcomes_in(restored)] == ["not attempted"] * 3
    assert set(progress.load()) == {"01.q1"}, "the reset lesson's progress is cleared, no other"


def test_reset_without_git_builds_the_workbook_again(course_copy, monkeypatch) -> None:
    monkeypatch.setattr(workbooks, "_as_shipped", lambda workbook: None)  # a zip, not a clone
    target, _ = workbooks.reset("00")
    nb = nbformat.read(target, as_version=4)
    assert "NotImplementedError" in nb.cells[3].source
    assert [o.status for o in workbooks.outcomes_in(nb)] == ["not attempted"] * 3


def test_reset_twice_keeps_both_versions(course_copy) -> None:
    _, first = workbooks.reset("00")
    _, second = workbooks.reset("00")
    assert first != second and first.exists() and second.exists()


def test_reset_keeps_a_corrupt_notebook(course_copy) -> None:
    book = course_copy / "exercises" / "00-welcome-workbook.ipynb"
    book.write_text('{"cells": [ truncated')
    _, backup = workbooks.reset("00")
    assert backup.read_text() == '{"cells": [ truncated'
    nbformat.validate(nbformat.read(book, as_version=4))


def test_reset_of_an_unknown_lesson_is_explained(course_copy) -> None:
    with pytest.raises(CourseError, match="no workbook for lesson '42'"):
        workbooks.reset("42")


def test_cli_reset_without_a_number(capsys) -> None:
    assert cli.main(["reset"]) == 2
    assert "make reset NB=04" in capsys.readouterr().err


def test_corrupt_notebook_is_explained(tmp_path) -> None:
    from course.checking.solutions import read_notebook

    bad = tmp_path / "03-x.ipynb"
    bad.write_text("not json at all")
    with pytest.raises(CourseError, match="not a readable notebook") as info:
        read_notebook(bad)
    assert "make reset NB=03" in info.value.fix


def test_progress_table_names_the_next_exercise(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "p.json"))
    (tmp_path / "p.json").write_text(json.dumps({"00.q1": {"status": "correct"}, "00.q2": {"status": "wrong"}}))
    table = workbooks.progress_table()
    assert "00      q1        ✅ correct" in table
    assert "00      q2        ❌ wrong" in table
    assert "Next: q2 (total_length) in exercises/00-welcome-workbook.ipynb." in table


def test_outcome_lines_are_parsed() -> None:
    nb = nbformat.read(paths.ROOT / "solutions" / "00-welcome-solution.ipynb", as_version=4)
    assert [o.status for o in workbooks.outcomes_in(nb)] == ["correct"] * 3


def test_verify_runs_the_learners_workbook_without_touching_it(course_copy, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(course_copy / "p.json"))
    book = course_copy / "exercises" / "00-welcome-workbook.ipynb"
    nb = nbformat.read(book, as_version=4)
    solved = nbformat.read(course_copy / "solutions" / "00-welcome-solution.ipynb", as_version=4)
    nb.cells[3].source = solved.cells[3].source  # the learner solved q1 only
    nb.cells[4].outputs = []  # and never ran its check cell
    nbformat.write(nb, book)
    before = book.read_bytes()
    outcomes = workbooks.verify("00")
    assert [o.status for o in outcomes] == ["correct", "not attempted", "not attempted"]
    assert book.read_bytes() == before
    assert json.loads((course_copy / "p.json").read_text())["00.q1"]["status"] == "correct"


def test_verify_reports_a_check_that_never_ran(course_copy, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_PROGRESS", str(course_copy / "p.json"))
    progress.record("00", "q1", "correct")  # from an earlier, working version
    book = course_copy / "exercises" / "00-welcome-workbook.ipynb"
    nb = nbformat.read(book, as_version=4)
    nb.cells[3].source = "def mmss(milliseconds: int) -> str:\n    return ("  # a syntax error
    nbformat.write(nb, book)
    outcomes = workbooks.verify("00")
    assert [o.exercise for o in outcomes] == ["q1", "q2", "q3"]
    assert outcomes[0].status == "not attempted" and "did not run" in outcomes[0].message
    assert progress.load()["00.q1"]["status"] == "not attempted", "no stale ✅ is left"


def test_verify_leaves_an_earlier_verdict_when_a_check_was_not_judged(tmp_path, monkeypatch) -> None:
    """A check the machine was too busy to judge changes nothing: `make verify` must not record
    it as not attempted over an earlier ✅ (its data says busy, and it was seen)."""
    from course.checking import progress
    from course.checking.checks import Outcome
    from course.display import OUTCOME_MIME
    from course.tools.workbooks import outcomes_in, record_unseen

    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    progress.record("00", "q1", "correct")
    busy = Outcome("q1", "busy", "the machine was too busy to judge this")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={"text/plain": busy.line, OUTCOME_MIME: busy.as_data("00")})])])
    found = outcomes_in(nb)
    assert [(o.exercise, o.status) for o in found] == [("q1", "busy")]
    record_unseen("00", found)
    assert progress.load()["00.q1"]["status"] == "correct"
    assert progress.load()["00.q2"]["status"] == "not attempted"  # its check printed nothing


def test_a_stored_line_without_data_is_still_read() -> None:
    from course.tools.workbooks import outcomes_in

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="⏳ q3 not judged: the machine was too busy\n❌ q2 not yet: off by one\n")])])
    assert [(o.exercise, o.status, o.message) for o in outcomes_in(nb)] == [
        ("q3", "busy", "the machine was too busy"), ("q2", "wrong", "off by one")]
