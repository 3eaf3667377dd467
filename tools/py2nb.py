"""Turn a percent-format script into a notebook (an authoring aid; the .ipynb is the source).

    python tools/py2nb.py lesson.py notebooks/03-aiosqlite.ipynb

Cells start with `# %%`; `# %% [markdown]` starts a markdown cell whose lines begin with "# ";
`# %% tags=["raises-exception"]` sets cell tags.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def convert(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    current: list[str] | None = None
    kind, tags = "code", []

    def flush() -> None:
        if current is None:
            return
        body = "\n".join(current).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)

    for line in text.splitlines():
        if (m := HEADER.match(line)) is not None:
            flush()
            current, kind = [], "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
        elif current is not None:
            current.append(line)
    flush()
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
    return nb


if __name__ == "__main__":
    source, target = map(Path, sys.argv[1:3])
    nbformat.write(convert(source.read_text()), target)
    print(f"wrote {target}")
