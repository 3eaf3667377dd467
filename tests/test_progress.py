"""Checks run from a lesson or a solution are demonstrations: they never count as progress."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from nbclient import NotebookClient

from course.checking import progress
from course.checking.checks import Exercise, Wrong
from course.paths import EXERCISES, NOTEBOOKS, ROOT, SOLUTIONS
from course.tools.build import QUIET_KERNEL


async def _double_checker(fn) -> str:
    from course.checking.checks import call

    if await call(fn, 21) != 42:
        raise Wrong("not 42")
    return "42"


EX = Exercise("q1", "double", checker=_double_checker, lesson="99")


def _check(answer) -> None:
    async def run() -> None:
        await EX.check(answer)

    asyncio.run(run())


@pytest.fixture
def scratch_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", str(tmp_path / "progress.json"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return tmp_path


@pytest.mark.parametrize("folder", [NOTEBOOKS, SOLUTIONS])
def test_without_a_session_name_the_kernels_folder_decides(scratch_progress, monkeypatch, folder) -> None:
    """nbclient, nbval and `make verify` set no JPY_SESSION_NAME; they start the kernel in the
    notebook's folder, as Jupyter does."""
    monkeypatch.chdir(folder)
    _check(lambda x: x)  # a wrong answer, as lesson 00 demonstrates one
    assert progress.load() == {}


@pytest.mark.parametrize("folder", [EXERCISES, ROOT])
def test_a_workbook_or_a_script_records(scratch_progress, monkeypatch, folder) -> None:
    monkeypatch.chdir(folder)
    _check(lambda x: x * 2)
    assert progress.load()["99.q1"]["status"] == "correct"


def test_a_relative_session_name_and_the_kernels_folder(scratch_progress, monkeypatch) -> None:
    """Jupyter started with its root in notebooks/ may name the lesson `00-welcome.ipynb`."""
    monkeypatch.setenv("JPY_SESSION_NAME", "00-welcome.ipynb")
    monkeypatch.chdir(NOTEBOOKS)
    _check(lambda x: x)
    assert progress.load() == {}


def test_an_absolute_session_name_wins_over_the_folder(scratch_progress, monkeypatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", str(EXERCISES / "00-welcome-workbook.ipynb"))
    monkeypatch.chdir(NOTEBOOKS)  # a learner's os.chdir does not hide their workbook
    _check(lambda x: x * 2)
    assert progress.load()["99.q1"]["status"] == "correct"


def _run_cell_in(folder, source: str) -> str:
    """Run one cell the way nbclient (`course run`, `make verify`) and nbval do: a kernel
    started in `folder`, with no JPY_SESSION_NAME. Returns what the cell printed."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", extra_arguments=QUIET_KERNEL,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    return "".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                   for output in nb.cells[0].outputs)  # printed, or displayed as Markdown and text


LESSON_00_DEMO = """\
from course.lessons import l00_welcome as ex


def mmss(milliseconds: int) -> str:
    seconds = milliseconds // 1000
    return f"{seconds // 60}:{seconds % 60}"


await ex.q1.check(mmss)
"""


def test_lesson_00_demo_run_outside_jupyter_records_nothing(scratch_progress) -> None:
    """The bug a newcomer met: notebooks/00 run where no session name is set (nbclient, nbval)
    recorded its deliberately wrong mmss as the learner's own attempt at 00 q1."""
    assert "❌ q1 not yet" in _run_cell_in(NOTEBOOKS, LESSON_00_DEMO)
    assert progress.load() == {}
    assert "❌ q1 not yet" in _run_cell_in(EXERCISES, LESSON_00_DEMO)  # from the workbook, it counts
    assert progress.load()["00.q1"]["status"] == "wrong"
