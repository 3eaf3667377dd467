"""The learner's side of the workbooks: progress table, verify and reset."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import unicodedata
from pathlib import Path
from typing import Any

import nbformat

from course import registry
from course.checking import progress
from course.checking.checks import STATUSES, Exercise, Outcome, Status, exercises_of
from course.checking.solutions import read_notebook, workbook_from
from course.display import OUTCOME_MIME
from course.errors import CourseError
from course.paths import ROOT, state_dir
from course.tools.build import QUIET_KERNEL, execute

# Check lines stored before verdicts carried their data, or printed outside a kernel.
OUTCOME_LINE = re.compile(r"^(✅|❌|⏳|⚠️) (q\d+) "
                          r"(correct|not yet|not attempted yet|not judged|the check itself failed)")
STATUS_OF: dict[str, Status] = {"correct": "correct", "not yet": "wrong",
                                "not attempted yet": "not attempted", "not judged": "busy",
                                "the check itself failed": "error"}


def all_exercises() -> list[Exercise]:
    """Every checked exercise of the course, in lesson order."""
    return [ex for lesson in registry.LESSONS for ex in exercises_of(lesson.checks())]


def width(text: str) -> int:
    """Columns `text` takes in a terminal: wide characters and emoji take two."""
    columns = 0
    for char in text:
        if unicodedata.combining(char) or char in "\u200d\ufe0e":
            continue
        if char == "\ufe0f":  # emoji presentation: the sign before it (⚠️) takes two columns
            columns += 1
            continue
        columns += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return columns


def pad(text: str, columns: int) -> str:
    """`text` and spaces up to `columns` display columns."""
    return text + " " * max(0, columns - width(text))


class ProgressTable(str):
    """The progress table: aligned text for terminals, a Markdown table in JupyterLab."""

    rows: list[tuple[str, ...]]
    footer: list[str]

    def _repr_markdown_(self) -> str:
        def cell(value: str) -> str:
            return value.replace("|", "\\|")

        head, *body = self.rows
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n\n" + "  \n".join(self.footer)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def progress_table() -> ProgressTable:
    """A table of every exercise and its latest outcome, then the next one to do.

    `print()` it in a terminal; as a notebook cell's last expression it shows as a table."""
    done = progress.load()
    exercises = all_exercises()
    rows: list[tuple[str, ...]] = [("lesson", "exercise", "state", "function", "what it asks")]
    next_up = None
    for ex in exercises:
        status = done.get(ex.key, {}).get("status", "not attempted")
        mark = {"correct": "✅", "wrong": "❌", "error": "⚠️"}.get(status, "⏳")
        rows.append((ex.lesson, ex.name, f"{mark} {status}", ex.function, ex.title))
        if next_up is None and status != "correct":
            next_up = ex
    solved = sum(1 for ex in exercises if done.get(ex.key, {}).get("status") == "correct")
    footer = [f"{solved} of {len(exercises)} exercises correct."]
    if next_up is not None:
        book = registry.lesson(next_up.lesson).workbook
        footer.append(f"Next: {next_up.name} ({next_up.function}) in exercises/{book.name}.")
    else:
        footer.append("Every exercise is correct. Well done!")
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(pad(value, w) for value, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * width(row[-1]))
    table = ProgressTable("\n".join(lines) + "\n\n" + "\n".join(footer))
    table.rows, table.footer = rows, footer
    return table


def _workbook(lesson: str) -> Path:
    found = [each.workbook for each in registry.LESSONS if each.number == lesson]
    if not found or not found[0].exists():
        known = ", ".join(each.number for each in registry.LESSONS if each.workbook.exists())
        raise CourseError(f"There is no workbook for lesson {lesson!r}.", f"use one of: {known}.")
    return found[0]


def reset(lesson: str) -> tuple[Path, Path]:
    """Back up the learner's workbook to .course/backups/, then restore it from solutions/."""
    target = _workbook(lesson)
    backups = state_dir() / "backups"
    backups.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = backups / f"{target.stem}-{stamp}.ipynb"
    n = 1
    while backup.exists():
        backup, n = backups / f"{target.stem}-{stamp}-{n}.ipynb", n + 1
    shutil.copy2(target, backup)  # even a corrupt notebook is kept, byte for byte
    if backup.read_bytes() != target.read_bytes():
        raise CourseError("The backup could not be written; nothing was reset.", f"check free disk space in {backups}.")
    shipped = _as_shipped(target)
    if shipped is not None:
        target.write_bytes(shipped)
    else:  # not a git checkout (a zip, say): build it again, with its outputs
        nbformat.write(workbook_from(registry.lesson(lesson).solution), target)
        execute(target)
    progress.forget(lesson)  # its checks judged code that is gone
    return target, backup


def _as_shipped(workbook: Path) -> bytes | None:
    """The workbook as committed in the course's git history, or None without git."""
    try:
        shown = subprocess.run(["git", "show", f"HEAD:exercises/{workbook.name}"],
                               cwd=ROOT, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return shown.stdout if shown.returncode == 0 and shown.stdout else None


def outcomes_in(nb: nbformat.NotebookNode) -> list[Outcome]:
    """The verdicts a notebook's checks displayed, read from their data (or, for an output
    without it, from the line)."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get(OUTCOME_MIME)
            if isinstance(data, dict) and data.get("status") in STATUSES:
                found.append(Outcome(data["exercise"], data["status"], data.get("message", "")))
                continue
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            for line in ("".join(text) if isinstance(text, list) else str(text)).splitlines():
                if (m := OUTCOME_LINE.match(line)) is not None:
                    message = line.split(": ", 1)[1] if ": " in line else ""
                    found.append(Outcome(m.group(2), STATUS_OF[m.group(3)], message))
    return found


def record_unseen(lesson: str, found: list[Outcome]) -> list[Outcome]:
    """Checks that printed nothing are recorded as not attempted (not left at an old ✅); a check
    that was not judged (busy) was seen, and its earlier verdict stands."""
    seen = {outcome.exercise for outcome in found}
    missing = []
    for ex in (ex for ex in all_exercises() if ex.lesson == lesson):
        if ex.name not in seen:
            progress.record(ex.lesson, ex.name, "not attempted")
            missing.append(Outcome(ex.name, "not attempted",
                                   "it did not run: a cell above its check failed, or the "
                                   "check cell is gone. Open the workbook and run it from the top."))
    return sorted(found + missing, key=lambda o: (len(o.exercise), o.exercise))


def verify(lesson: str, timeout: int = 300) -> list[Outcome]:
    """Run a learner's workbook top to bottom in a fresh kernel; the file itself is untouched."""
    from nbclient import NotebookClient

    source = _workbook(lesson)
    nb = read_notebook(source)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            extra_arguments=QUIET_KERNEL,
                            resources={"metadata": {"path": str(source.parent)}},
                            record_timing=False)
    try:
        client.execute()
    except Exception as exc:  # a dead kernel or a cell over the time limit
        print(f"⚠️ {source.name}: the run stopped early ({type(exc).__name__}).")
    return record_unseen(lesson, outcomes_in(nb))

