"""The verification page: its HTML, CSS and JavaScript sources, kept as package data.

Every line of JavaScript the page runs is a file of this package, readable as it is served:
no build step, no external script, font or stylesheet.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["asset"]


def asset(name: str) -> str:
    """The text of one of the page's source files (``verify.js``, ``page.html`` …)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
