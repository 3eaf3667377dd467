"""SQLAlchemy event listeners that a check's probe adds and removes together (lessons 06-08)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event

Hook = tuple[Any, str, Callable[..., Any]]  # (target, event name, listener)


def listen_all(hooks: Iterable[Hook]) -> None:
    """event.listen() each (target, name, listener)."""
    for target, name, listener in hooks:
        event.listen(target, name, listener)


def remove_all(hooks: Iterable[Hook]) -> None:
    """event.remove() each (target, name, listener), as listen_all() added them."""
    for target, name, listener in hooks:
        event.remove(target, name, listener)
