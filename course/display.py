"""How course helpers show things: rich in JupyterLab, plain text everywhere else.

`show(text, markdown)` displays Markdown in a notebook, with `text` as its plain-text form (what a
terminal, `make verify` and the stored outputs that nbval compares see); outside IPython it
prints `text`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Shown", "show"]


class Shown:
    """Markdown for JupyterLab with a plain-text form for everything else."""

    def __init__(self, text: str, markdown: str) -> None:
        self.text = text
        self.markdown = markdown

    def _repr_markdown_(self) -> str:
        return self.markdown

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (not a terminal, not plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show(text: str, markdown: str) -> None:
    """Display Markdown in a notebook; print the plain text anywhere else."""
    if in_kernel():
        from IPython.display import display

        display(Shown(text, markdown))
    else:
        print(text)
