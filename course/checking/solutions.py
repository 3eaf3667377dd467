"""The single source: solution markers in solutions/, the workbook they make, a solution's code.

Markers, in code cells of solutions/NN-slug.ipynb:

    ### BEGIN SOLUTION          the lines up to END SOLUTION are the solution
    ### END SOLUTION
    value = 42  # SOLUTION      one line of solution

The stub takes the indentation of the marker, so markers belong inside a function body.
Unmatched or nested markers are a BuildError that names the notebook and the cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from course import registry
from course.errors import CourseError
from course.paths import ROOT

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^(\s*)### END SOLUTION\s*$")
ONE_LINE = re.compile(r"^(\s*)\S.*#\s*SOLUTION\s*$")
STUB = 'raise NotImplementedError("your code here")'


class BuildError(CourseError):
    def __init__(self, notebook: Path, cell: int, problem: str) -> None:
        where = notebook.relative_to(ROOT) if notebook.is_relative_to(ROOT) else notebook
        super().__init__(f"{where}, cell {cell}: {problem}",
                         "fix the solution markers in that cell, then run `make build` again.")


def strip_solution(source: str, notebook: Path, cell: int) -> tuple[str, int]:
    """Replace each marked solution with a stub; return the new source and the number replaced."""
    out: list[str] = []
    inside_indent: str | None = None
    count = 0
    for number, line in enumerate(source.splitlines(), start=1):
        if (m := BEGIN.match(line)) is not None:
            if inside_indent is not None:
                raise BuildError(notebook, cell, f"line {number}: BEGIN SOLUTION inside another one.")
            if m.group(1) == "":
                raise BuildError(notebook, cell, f"line {number}: markers belong inside a function body.")
            inside_indent = m.group(1)
            continue
        if END.match(line) is not None:
            if inside_indent is None:
                raise BuildError(notebook, cell, f"line {number}: END SOLUTION without a BEGIN.")
            out.append(inside_indent + STUB)
            inside_indent, count = None, count + 1
            continue
        if (m := ONE_LINE.match(line)) is not None:
            if inside_indent is not None:
                raise BuildError(notebook, cell, f"line {number}: # SOLUTION inside a BEGIN/END block.")
            if m.group(1) == "":
                raise BuildError(notebook, cell, f"line {number}: markers belong inside a function body.")
            out.append(m.group(1) + STUB)
            count += 1
            continue
        if inside_indent is None:
            out.append(line)
    if inside_indent is not None:
        raise BuildError(notebook, cell, "BEGIN SOLUTION without an END SOLUTION.")
    return "\n".join(out), count


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, or explain in one line why it cannot be read."""
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise CourseError(f"{path.name} does not exist.", "check the lesson number (00, 01, ...).") from None
    except Exception as exc:
        raise CourseError(
            f"{path.name} is not a readable notebook ({type(exc).__name__}).",
            f"restore it with `make reset NB={path.name[:2]}` (your copy is backed up first).",
        ) from None


def workbook_from(solution: Path) -> nbformat.NotebookNode:
    """The learner's workbook for one solutions notebook, without outputs."""
    nb = read_notebook(solution)
    total = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.source, count = strip_solution(cell.source, solution, index)
        total += count
        cell.outputs, cell.execution_count = [], None
    if total == 0:
        raise BuildError(solution, 0, "no solution markers at all; is this a solutions notebook?")
    return nb


def solution_source(lesson: str, function: str) -> str:
    """The solution cell that defines `function` in solutions/<lesson>-*.ipynb, without markers."""
    found = [each.solution for each in registry.LESSONS if each.number == lesson]
    if not found or not found[0].exists():
        return f"(no solutions notebook for lesson {lesson})"
    nb = read_notebook(found[0])
    pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(function)}\b|^{re.escape(function)}\s*=", re.M)
    for cell in nb.cells:
        if cell.cell_type == "code" and pattern.search(cell.source) and "SOLUTION" in cell.source:
            lines = [ln for ln in cell.source.splitlines() if not (BEGIN.match(ln) or END.match(ln))]
            return "\n".join(re.sub(r"\s*#\s*SOLUTION\s*$", "", ln) for ln in lines)
    return f"(no solution found for {function} in {found[0].name})"
