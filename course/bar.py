"""tqdm.auto's progress bar, whose finished bar a saved notebook keeps.

In JupyterLab tqdm.auto draws a widget. A widget lives in the kernel: a notebook saved and
reopened later shows "Error displaying widget: model not found" where the bar was, and the
stored output of an unrun notebook shows the bar's first state, 0%. This bar is the same widget
while it runs; when it closes, it replaces itself with its final line of text
(`COPY: 100%|██████████| 300k/300k [...]`), which every viewer shows. Outside a notebook it is
tqdm.auto's text bar, unchanged.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm as _auto_tqdm

from course.display import in_kernel

__all__ = ["tqdm"]

# tqdm.auto gives the widget bar only where it found a kernel and ipywidgets
_NOTEBOOK = any(cls.__module__ == "tqdm.notebook" for cls in _auto_tqdm.__mro__)


class _TextBar:
    """A finished progress bar as text only, with nothing that needs a live kernel."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def __repr__(self) -> str:
        return self.text


def _close_widget(widget: Any) -> None:
    """Close a widget and the models it owns, so that none is left for a notebook to store."""
    for child in getattr(widget, "children", ()):
        _close_widget(child)
    for part in ("style", "layout"):
        owned = getattr(widget, part, None)
        if owned is not None and hasattr(owned, "close"):
            owned.close()
    widget.close()


class tqdm(_auto_tqdm):  # the name learners know
    """tqdm.auto's progress bar; in a notebook, a finished bar is left as a line of text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handle = None
        widget = _NOTEBOOK and in_kernel() and not kwargs.get("disable")
        if widget:
            kwargs["display"] = False  # displayed below, with an id that lets close() replace it
        super().__init__(*args, **kwargs)
        if widget and hasattr(self, "container"):
            from IPython.display import display

            self._handle = display(self.container, display_id=True)
            self.displayed = True

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        super().close()
        if handle is not None:
            handle.update(_TextBar(self.format_meter(**self.format_dict)))
            _close_widget(self.container)
