"""Jinja2 pages for followers, prepared once at start-up."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from jinja2.filters import do_filesizeformat


class Pages:
    """Renders the small phone-friendly HTML pages under ``templates/``."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("bot.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["size"] = size_text

    def render(self, name: str, **context: Any) -> str:
        """The named template (without ``.html``) filled with ``context``."""
        return self._env.get_template(f"{name}.html").render(**context)


def size_text(size: int) -> str:
    """A file size as phones show it: ``316 B``, ``3.1 MB`` (1000-based, as iOS and Android)."""
    return f"{size} B" if size < 1000 else str(do_filesizeformat(size))
