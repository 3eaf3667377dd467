"""make build: markers become stubs; malformed markers are errors naming notebook and cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course.checking.solutions import STUB, BuildError, strip_solution, workbook_from

NB = Path("solutions/99-test-solution.ipynb")


def test_block_becomes_an_indented_stub() -> None:
    source = "def f(x):\n    ### BEGIN SOLUTION\n    y = x * 2\n    return y\n    ### END SOLUTION\n"
    assert strip_solution(source, NB, 3) == (f"def f(x):\n    {STUB}", 1)


def test_one_line_form() -> None:
    source = "async def f():\n    return 42  # SOLUTION\n"
    assert strip_solution(source, NB, 1) == (f"async def f():\n    {STUB}", 1)


@pytest.mark.parametrize(("source", "problem"), [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "BEGIN SOLUTION without an END"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "END SOLUTION without a BEGIN"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "inside another one"),
    ("def f():\n    ### BEGIN SOLUTION\n    x = 1  # SOLUTION\n    ### END SOLUTION\n", "inside a BEGIN/END block"),
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "inside a function body"),
])
def test_malformed_markers_name_notebook_and_cell(source: str, problem: str) -> None:
    with pytest.raises(BuildError) as info:
        strip_solution(source, NB, 7)
    assert f"{NB}, cell 7" in info.value.problem and problem in info.value.problem


def test_a_notebook_without_markers_is_refused(tmp_path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    path = tmp_path / "99-x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(BuildError, match="no solution markers"):
        workbook_from(path)


def test_markdown_is_left_alone_and_outputs_cleared(tmp_path) -> None:
    code = nbformat.v4.new_code_cell("def f():\n    return 1  # SOLUTION")
    code.outputs = [nbformat.v4.new_output("stream", text="✅ q1 correct.\n")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("### BEGIN SOLUTION is text here"), code])
    path = tmp_path / "99-x.ipynb"
    nbformat.write(nb, path)
    built = workbook_from(path)
    assert built.cells[0].source == "### BEGIN SOLUTION is text here"
    assert built.cells[1].outputs == [] and STUB in built.cells[1].source


def test_stored_streams_do_not_depend_on_how_the_kernel_flushed() -> None:
    from course.tools.build import merged_streams

    def out(name: str, text: str) -> nbformat.NotebookNode:
        return nbformat.v4.new_output("stream", name=name, text=text)

    chunks = [out("stdout", "a\n"), out("stdout", "b\n"), out("stderr", "!\n"), out("stdout", "c\n")]
    assert [(o.name, o.text) for o in merged_streams(chunks)] == [
        ("stdout", "a\nb\n"), ("stderr", "!\n"), ("stdout", "c\n")]
