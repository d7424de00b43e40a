"""Jinja2 pages for followers, prepared once at start-up."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


class Pages:
    """Renders the small phone-friendly HTML pages under ``templates/``."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("bot.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, **context: Any) -> str:
        """The named template (without ``.html``) filled with ``context``."""
        return self._env.get_template(f"{name}.html").render(**context)
