"""How course helpers show things: rich in JupyterLab, plain text everywhere else.

`show(text, markdown)` displays Markdown in a notebook, with `text` as its plain-text form (what a
terminal, `make verify` and the stored outputs that nbval compares see); outside IPython it
prints `text`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["OUTCOME_MIME", "Shown", "markdown_line", "show"]


OUTCOME_MIME = "application/vnd.async-db-course.outcome+json"  # a check's verdict, as data


class Shown:
    """Markdown for JupyterLab with a plain-text form for everything else, and optionally the
    same thing as data (a check's verdict) for the tools that read stored outputs."""

    def __init__(self, text: str, markdown: str, data: dict[str, Any] | None = None) -> None:
        self.text = text
        self.markdown = markdown
        self.data = data

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text, "text/markdown": self.markdown}
        if self.data is not None:
            bundle[OUTCOME_MIME] = self.data
        return bundle

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")  # CommonMark's code span
_MARKDOWN_SIGNS = re.compile(r"([\\`*_\[\]<>|~&])")  # inline signs; a line starts with its icon


def markdown_line(text: str) -> str:
    """`text` as Markdown that shows it as it reads: `code` spans render as code, every other
    sign Markdown would interpret (`*`, `_`, `<`, `#`, ...) stays literal. A Markdown paragraph
    wraps between words, where a text output breaks lines anywhere, even inside a word."""
    parts, last = [], 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(_MARKDOWN_SIGNS.sub(r"\\\1", text[last:span.start()]))
        parts.append(span.group(0))
        last = span.end()
    parts.append(_MARKDOWN_SIGNS.sub(r"\\\1", text[last:]))
    return "".join(parts).replace("\n", "  \n")  # a line break stays a line break


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (not a terminal, not plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show(text: str, markdown: str, data: dict[str, Any] | None = None) -> None:
    """Display Markdown (and `data`, if given) in a notebook; print the plain text anywhere else."""
    if in_kernel():
        from IPython.display import display

        display(Shown(text, markdown, data))  # type: ignore[no-untyped-call]  # IPython's display() is unannotated
    else:
        print(text)
