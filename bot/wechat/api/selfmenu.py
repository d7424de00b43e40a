"""The live menu as a ``[menu]`` to start from, also when it was made on the admin page.

``menu/get`` only knows menus made through the API. A menu made on the 公众号 admin page is
read with ``get_current_selfmenu_info``: its 文字 buttons become ``click`` buttons with a rule
holding the text; picture, voice, video and news buttons (their media belong to the admin page)
become ``click`` buttons no rule answers yet, listed with their ids for the owner to replace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.wechat.api.autoreply import Skipped
from bot.wechat.api.menu import LEAF_FIELDS, array_of_tables, live_buttons

ADMIN = "the admin page's menu (get_current_selfmenu_info)"
API = "the menu made through the API (menu/get)"


@dataclass
class Pulled:
    """A live menu in ``[menu]``'s shape, rules for its text buttons, what could not come."""

    source: str
    buttons: list[dict[str, Any]] = field(default_factory=list)
    keywords: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_live(self) -> dict[str, Any]:
        """The shape ``menu/get`` answers, for ``diff_menus``."""
        return {"menu": {"button": self.buttons}}


def from_menu_get(answer: dict[str, Any]) -> Pulled:
    """A ``menu/get`` answer; its conditional menus are named, not pulled."""
    pulled = Pulled(API, live_buttons(answer))
    if conditional := answer.get("conditionalmenu"):
        pulled.notes.append(
            f"{len(conditional)} conditional menu(s) (by tag) stay on WeChat's side: the bot"
            " does not manage them, and `bot menu delete` removes them too"
        )
    return pulled


def from_selfmenu(answer: dict[str, Any]) -> Pulled | None:
    """A ``get_current_selfmenu_info`` answer (None: the account has no menu at all)."""
    buttons = (answer.get("selfmenu_info") or {}).get("button") or []
    if not buttons:
        return None
    pulled = Pulled(ADMIN)
    if not answer.get("is_menu_open"):
        pulled.notes.append("the admin page's menu is switched off (is_menu_open 0)")
    for i, top in enumerate(buttons):
        subs = top.get("sub_button")
        subs = subs.get("list") if isinstance(subs, dict) else subs
        if subs:
            leaves = [
                _leaf(pulled, f"menu.button[{i}].sub_button[{j}]", f"MENU_{i + 1}_{j + 1}", sub)
                for j, sub in enumerate(subs)
            ]
            pulled.buttons.append({"name": str(top.get("name", "")), "sub_button": leaves})
        else:
            pulled.buttons.append(_leaf(pulled, f"menu.button[{i}]", f"MENU_{i + 1}", top))
    return pulled


def _leaf(pulled: Pulled, where: str, key: str, button: dict[str, Any]) -> dict[str, Any]:
    kind, name = str(button.get("type", "")), str(button.get("name", ""))
    if kind in LEAF_FIELDS:  # made through the API: kept as it is
        fields = ("type", "name", *LEAF_FIELDS[kind])
        return {f: button[f] for f in fields if button.get(f) is not None}
    if kind == "text":
        reply = str(button.get("value", "")).replace("{", "{{").replace("}", "}}")
        pulled.keywords.append({"click": key, "reply": reply})
    else:
        pulled.skipped.append(Skipped(f"{where} ({name!r}), now key {key}", kind, _ids(button)))
    return {"type": "click", "name": name, "key": key}


def _ids(button: dict[str, Any]) -> str:
    articles = (button.get("news_info") or {}).get("list") or []
    shown = [f"{a.get('title', '')} {a.get('content_url', '')}" for a in articles]
    return "; ".join([str(button.get("value", "")), *shown]).strip("; ")


def to_toml(pulled: Pulled) -> str:
    """TOML to review and paste into config.toml: ``[menu]``, rules, and comments on the rest."""
    head = [f"# Pulled from {pulled.source}: review, then paste into config.toml."]
    head += [f"# Note: {note}." for note in pulled.notes]
    if pulled.skipped:
        head.append(
            "# Not carried over (their media belong to the admin page): each is now a click"
            " button; answer its key with a [[keywords]] rule (click = KEY) or change it:"
        )
        head += [f"#   {s.where}: {s.kind} {s.content!r}" for s in pulled.skipped]
    text = "\n".join(head) + "\n\n" + array_of_tables("menu.button", pulled.buttons)
    if pulled.keywords:
        text += "\n# The admin page's text buttons, answered as before:\n"
        text += array_of_tables("keywords", pulled.keywords)
    return text
