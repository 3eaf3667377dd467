"""`make build`: write exercises/ from solutions/ and run them, storing their outputs.

The markers and the stub are course.checking.solutions'.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from course import registry
from course.checking.solutions import read_notebook, workbook_from


def build_all(only: str | None = None) -> list[Path]:
    """Write exercises/ from solutions/ (sources only); return the notebooks written."""
    written = []
    for lesson in registry.LESSONS:
        if only not in (None, lesson.number):
            continue
        solution, target = lesson.solution, lesson.workbook
        new = workbook_from(solution)
        if target.exists():  # keep outputs if the sources did not change
            old = read_notebook(target)
            if [(c.source, c.metadata.get("tags")) for c in old.cells] == \
                    [(c.source, c.metadata.get("tags")) for c in new.cells]:
                continue
        nbformat.write(new, target)
        written.append(target)
    return written


# The kernel listens on loopback only; its notice about unencrypted local TCP is not for learners.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def execute(path: Path, timeout: int = 600) -> None:
    """Run a notebook in a fresh kernel and store its outputs in place.

    The kernel sees an empty progress file, and is told its notebook's path as JupyterLab tells
    it: a stored progress table shows what a new learner sees, never the author's progress, and
    the author's own progress is left alone."""
    import os
    import tempfile

    from nbclient import NotebookClient

    nb = read_notebook(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=QUIET_KERNEL,
                            resources={"metadata": {"path": str(path.parent)}},
                            record_timing=False)
    saved = {name: os.environ.get(name) for name in ("COURSE_PROGRESS", "JPY_SESSION_NAME")}
    with tempfile.TemporaryDirectory(prefix="course-run-") as scratch:
        os.environ["COURSE_PROGRESS"] = str(Path(scratch) / "progress.json")
        os.environ["JPY_SESSION_NAME"] = str(path.resolve())
        try:
            client.execute()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = merged_streams(cell.outputs)
    drop_unused_widget_state(nb)
    nbformat.write(nb, path)


def merged_streams(outputs: list) -> list:
    """Join consecutive stdout (or stderr) outputs into one, as Jupyter shows them: how the
    kernel happened to flush its text must not change the stored notebook from run to run."""
    merged: list = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and last is not None
                and last.get("output_type") == "stream" and last.get("name") == output.get("name")):
            last["text"] += output["text"]
        else:
            merged.append(output)
    return merged


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def drop_unused_widget_state(nb: nbformat.NotebookNode) -> None:
    """Forget the state of widgets no stored output shows (closed progress bars, say)."""
    shown = any(WIDGET_VIEW in output.get("data", {})
                for cell in nb.cells for output in cell.get("outputs", []))
    if not shown:
        nb.metadata.pop("widgets", None)
