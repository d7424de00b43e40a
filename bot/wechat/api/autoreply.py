"""The admin page's auto-replies (``get_current_autoreply_info``) as rules for the owner to review.

全匹配 (``equal``) → ``mode = "exact"``, 半匹配 (``contain``) → ``"contains"``; text replies carry
over as ``reply``; 被关注回复 → ``[replies] welcome``, 收到消息回复 → ``[replies] other``. Images,
voice, video and news cannot: their media ids belong to the admin page. They are listed instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tomli_w

from bot.wechat.api.menu import array_of_tables

MODES = {"equal": "exact", "contain": "contains"}
NOTE = "\n\n"  # reply_all with several texts: one reply holds them all, a blank line apart


@dataclass(frozen=True)
class Skipped:
    """Something the import could not carry over: where it was, its type and id or content."""

    where: str
    kind: str
    content: str


@dataclass
class Imported:
    """Rules (``[[keywords]]``), ``[replies]`` texts, and what was left behind."""

    keywords: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def _literal(text: str) -> str:
    """Text as a reply template: braces doubled, so ``{`` is not read as a placeholder."""
    return text.replace("{", "{{").replace("}", "}}")


def _describe(reply: dict[str, Any]) -> str:
    if reply.get("type") == "news":
        articles = (reply.get("news_info") or {}).get("list") or []
        shown = "; ".join(f"{a.get('title', '')} {a.get('content_url', '')}" for a in articles)
        return f"{reply.get('content', '')} {shown}".strip()
    return str(reply.get("content", ""))


def convert(answer: dict[str, Any]) -> Imported:
    """The rules and replies ``answer`` describes (pure: nothing is fetched or written)."""
    out = Imported()
    seen: set[str] = set()
    rules = (answer.get("keyword_autoreply_info") or {}).get("list") or []
    for i, rule in enumerate(rules):
        where = f"rule {i} ({rule.get('rule_name', '')!r})"
        replies = rule.get("reply_list_info") or []
        texts = [str(r.get("content", "")) for r in replies if r.get("type") == "text"]
        for r in replies:
            if r.get("type") != "text":
                out.skipped.append(Skipped(where, str(r.get("type")), _describe(r)))
        if rule.get("reply_mode") == "random_one" and len(texts) > 1:
            for extra in texts[1:]:
                out.skipped.append(Skipped(where, "text (random_one: first kept)", extra))
            texts = texts[:1]
        if not texts:
            continue
        by_mode: dict[str, list[str]] = {}
        for keyword in rule.get("keyword_list_info") or []:
            text = str(keyword.get("content", "")).strip()
            mode = MODES.get(str(keyword.get("match_mode")), "exact")
            if text and text not in seen:
                seen.add(text)
                by_mode.setdefault(mode, []).append(text)
        reply = _literal(NOTE.join(texts))
        for mode, aliases in by_mode.items():
            match: str | list[str] = aliases[0] if len(aliases) == 1 else aliases
            out.keywords.append({"match": match, "mode": mode, "reply": reply})
    for key, info, switch in (
        ("welcome", "add_friend_autoreply_info", "is_add_friend_reply_open"),
        ("other", "message_default_autoreply_info", "is_autoreply_open"),
    ):
        default = answer.get(info) or {}
        if not default or not answer.get(switch):
            continue
        if default.get("type") == "text":
            out.replies[key] = _literal(str(default.get("content", "")))
        else:
            out.skipped.append(
                Skipped(f"[replies] {key}", str(default.get("type")), _describe(default))
            )
    return out


def to_toml(imported: Imported) -> str:
    """TOML to review and paste: the rules, ``[replies]`` (commented), what was left behind."""
    head = ["# Imported from the 公众号 admin page's 自动回复: review before use."]
    if imported.skipped:
        head.append("# Not carried over (their media belongs to the admin page):")
        head += [f"#   {s.where}: {s.kind} {s.content!r}" for s in imported.skipped]
    text = "\n".join(head) + "\n\n"
    if imported.keywords:
        text += array_of_tables("keywords", imported.keywords)
    if imported.replies:
        # Commented: a config from `bot init` has [replies] already, and TOML allows one.
        text += "\n# Set these in your config's [replies] (uncomment the header if it has none):\n"
        text += "# [replies]\n" + "".join(
            f"# {line}\n" for line in tomli_w.dumps(imported.replies).splitlines()
        )
    return text
