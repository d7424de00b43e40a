"""`bot check`'s rule table: triggers → files, sizes, limit, window (columns by display width)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from bot.keywords.settings import FIXED_REPLIES, KeywordSettings, link_limit, window_text
from bot.keywords.triggers import INDEXES, TEXT

HEADER = ("triggers", "size", "gives", "limit", "window")


def display_width(text: str) -> int:
    """Columns a terminal gives ``text``: wide and full-width characters (中文, ＡＢ) take two."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def pad(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` display columns."""
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def triggers(rule: KeywordSettings) -> str:
    """``芝麻开门 | wine (contains) · menu KEY · scene NAME``: each index's label in turn."""
    parts = []
    for name, index in INDEXES.items():
        if name == TEXT and rule.aliases:
            mode = "" if rule.mode == "exact" else f" ({rule.mode})"
            parts.append(" | ".join(rule.aliases) + mode)
        elif name != TEXT and getattr(rule, index.field):
            parts.append(index.label.format(getattr(rule, index.field)))
    return " · ".join(parts)


def rows(
    rules: Sequence[KeywordSettings], found: Mapping[str, tuple[int, str]], default_limit: int
) -> list[tuple[str, ...]]:
    """One row per file a rule gives (a reply-only rule: one row saying so); ``found`` maps a
    file to its size and where the delivery keeps it (a name in files.dir, or ``s3://…``)."""
    table: list[tuple[str, ...]] = []
    for rule in rules:
        limit = link_limit(rule, default_limit)
        window = window_text(rule) if (rule.active_from or rule.active_until) else "always"
        style = "" if rule.style == "text" else f" [{rule.style}]"
        first = triggers(rule)
        if rule.image:
            table.append((first, "", f"image {rule.image}", "", window))
        elif not rule.file_list:
            kind = rule.style if rule.style in FIXED_REPLIES else "text"
            table.append(
                (first, "", f"{kind} reply" + ("" if kind != "text" else style), "", window)
            )
        for name in rule.file_list:
            size, where = found[name]
            table.append((first, f"{size:,}", where + style, str(limit or "∞"), window))
            first = ""
    return table


def render(table: list[tuple[str, ...]]) -> str:
    """Aligned columns; numbers right-aligned."""
    everything = [HEADER, *table]
    widths = [max(display_width(row[i]) for row in everything) for i in range(len(HEADER))]
    lines = []
    for row in everything:
        cells = [pad(cell, widths[i], right=i in (1, 3)) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
