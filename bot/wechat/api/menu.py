"""``[menu]``: WeChat's custom menu as config mirrors it, checked against WeChat's limits.

Conditional menus (``menu/addconditional``, matched by user tag) are not supported: an owner
who needs them keeps them on WeChat's side; a ``matchrule`` in the config is refused.
"""

from __future__ import annotations

from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from bot.errors import ConfigError

MAX_TOP, MAX_SUB = 3, 5
TOP_NAME_BYTES, SUB_NAME_BYTES = 16, 60
KEY_BYTES, URL_BYTES = 128, 1024
# Each leaf type and the fields WeChat requires for it.
LEAF_FIELDS: dict[str, tuple[str, ...]] = {
    "click": ("key",),
    "view": ("url",),
    "miniprogram": ("url", "appid", "pagepath"),
    "scancode_push": ("key",),
    "scancode_waitmsg": ("key",),
    "pic_sysphoto": ("key",),
    "pic_photo_or_album": ("key",),
    "pic_weixin": ("key",),
    "location_select": ("key",),
    "media_id": ("media_id",),
    "article_id": ("article_id",),
    "view_limited": ("media_id",),
    "article_view_limited": ("article_id",),
}
ANSWERED_BY_RULES = frozenset({"click", "scancode_push", "scancode_waitmsg"})  # keys rules see
OPTIONAL = ("key", "url", "appid", "pagepath", "media_id", "article_id")
ButtonType = Literal[
    "click",
    "view",
    "miniprogram",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "view_limited",
    "article_view_limited",
]


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


class Button(BaseModel):
    """A leaf (``type`` and its fields) or a parent (``sub_button``), as in WeChat's JSON."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: ButtonType | None = None
    key: str | None = None
    url: str | None = None
    appid: str | None = None
    pagepath: str | None = None
    media_id: str | None = None
    article_id: str | None = None
    sub_button: list[Button] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Button:
        given = [f for f in OPTIONAL if getattr(self, f) is not None]
        if self.sub_button is not None:
            if self.type is not None or given:
                raise ValueError(
                    "a button with sub_button has only a name: drop type and "
                    + (", ".join(given) or "type")
                )
            return self
        if self.type is None:
            raise ValueError(f"needs a type ({', '.join(LEAF_FIELDS)}) or sub_button")
        needed = LEAF_FIELDS[self.type]
        if missing := [f for f in needed if not getattr(self, f)]:
            raise ValueError(f'type "{self.type}" needs {" and ".join(missing)}')
        if extra := [f for f in given if f not in needed]:
            raise ValueError(f'type "{self.type}" does not use {", ".join(extra)}: remove it')
        if self.key is not None and _bytes(self.key) > KEY_BYTES:
            raise ValueError(f"key is {_bytes(self.key)} bytes; at most {KEY_BYTES}: shorten it")
        if self.url is not None:
            if _bytes(self.url) > URL_BYTES:
                raise ValueError(f"url is {_bytes(self.url)} bytes; at most {URL_BYTES}")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError("url must start with http:// or https://")
        return self


class Menu(BaseModel):
    """The whole menu: 1-3 top buttons, each a leaf or a parent of 1-5 leaves."""

    model_config = ConfigDict(extra="forbid")

    button: list[Button]

    @model_validator(mode="before")
    @classmethod
    def _no_conditions(cls, data: Any) -> Any:
        if isinstance(data, dict) and "matchrule" in data:
            raise ValueError(
                "conditional menus (matchrule) are not supported: remove matchrule; keep"
                " tag-matched menus on WeChat's side (menu/addconditional)"
            )
        return data

    @model_validator(mode="after")
    def _limits(self) -> Menu:
        if not 1 <= len(self.button) <= MAX_TOP:
            raise ValueError(
                f"menu.button has {len(self.button)} buttons; WeChat allows 1 to {MAX_TOP}:"
                " group the others under a parent's sub_button"
            )
        for i, top in enumerate(self.button):
            where = f"menu.button[{i}]"
            _name(where, top.name, TOP_NAME_BYTES, "a top-level")
            if top.sub_button is None:
                continue
            if not 1 <= len(top.sub_button) <= MAX_SUB:
                raise ValueError(
                    f"{where} ({top.name!r}) has {len(top.sub_button)} sub-buttons; WeChat allows"
                    f" 1 to {MAX_SUB}: move some to another top button"
                )
            for j, sub in enumerate(top.sub_button):
                here = f"{where}.sub_button[{j}]"
                _name(here, sub.name, SUB_NAME_BYTES, "a sub-button")
                if sub.sub_button is not None:
                    raise ValueError(f"{here} ({sub.name!r}): sub-buttons cannot have sub_button")
        return self


def _name(where: str, name: str, limit: int, kind: str) -> None:
    size = _bytes(name)
    if not name.strip():
        raise ValueError(f"{where}: name is empty: give the button a name")
    if size > limit:
        raise ValueError(
            f"{where} ({name!r}): name is {size} bytes; {kind} name may have at most {limit}"
            f" bytes of UTF-8 (a Chinese character is 3): shorten it"
        )


def load_menu(data: Any) -> Menu:
    """``[menu]`` as read from TOML, checked; ConfigError names the button, limit and fix."""
    try:
        return Menu.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = "menu" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise ConfigError(key, err["msg"].removeprefix("Value error, ")) from None


def to_wechat_json(menu: Menu) -> dict[str, Any]:
    """The ``menu/create`` body, exactly WeChat's documented shape."""
    return menu.model_dump(exclude_none=True)


def live_buttons(live: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The buttons of a ``menu/get`` answer (``{"menu": {"button": …}}``), minus empty lists."""
    buttons = ((live or {}).get("menu") or {}).get("button") or []
    return [_tidy(b) for b in buttons]


def _tidy(button: dict[str, Any]) -> dict[str, Any]:
    tidy = {k: v for k, v in button.items() if k != "sub_button"}
    subs = button.get("sub_button")
    if isinstance(subs, dict):  # some answers wrap them: {"list": [...]}
        subs = subs.get("list")
    if subs:
        tidy["sub_button"] = [_tidy(s) for s in subs]
    return tidy


def diff_menus(live: dict[str, Any] | None, menu: Menu) -> list[str]:
    """Where the live menu differs from the config's, one line per button (empty: the same)."""
    have, want = _flat(live_buttons(live)), _flat(to_wechat_json(menu)["button"])
    lines = []
    for where in sorted(have.keys() | want.keys()):
        if have.get(where) != want.get(where):
            lines.append(f"{where}: live {_show(have.get(where))}, config {_show(want.get(where))}")
    return lines


def _flat(buttons: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    flat: dict[str, dict[str, Any]] = {}
    for i, top in enumerate(buttons):
        flat[f"menu.button[{i}]"] = {k: v for k, v in top.items() if k != "sub_button"}
        for j, sub in enumerate(top.get("sub_button") or []):
            flat[f"menu.button[{i}].sub_button[{j}]"] = sub
    return flat


def _show(button: dict[str, Any] | None) -> str:
    if button is None:
        return "(none)"
    return ", ".join(f"{k}={v!r}" for k, v in button.items())


def to_toml(live: dict[str, Any] | None) -> str:
    """The live menu as a ``[menu]`` section an owner can paste into config.toml."""
    return array_of_tables("menu.button", live_buttons(live))


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def array_of_tables(name: str, rows: list[dict[str, Any]]) -> str:
    """``[[name]]`` tables (nested ones too), never inline: the form WeChat's docs map to, and
    one that can be appended to a config already holding ``[[name]]`` tables."""
    chunks = []
    for row in rows:
        flat = {k: v for k, v in row.items() if not _tables(v)}
        chunks.append(f"[[{name}]]\n" + tomli_w.dumps(flat))
        chunks += [array_of_tables(f"{name}.{k}", v) for k, v in row.items() if _tables(v)]
    return "\n".join(chunks)


def unanswered_keys(menu: Menu, answered: set[str]) -> list[str]:
    """click and scancode keys no rule answers (for a warning), with the button's place."""
    found = []
    for i, top in enumerate(menu.button):
        leaves = (
            [(f"menu.button[{i}]", top)]
            if top.sub_button is None
            else [(f"menu.button[{i}].sub_button[{j}]", s) for j, s in enumerate(top.sub_button)]
        )
        for where, leaf in leaves:
            if leaf.type in ANSWERED_BY_RULES and leaf.key not in answered:
                found.append(f"{where} ({leaf.name!r}): key {leaf.key!r}")
    return found
