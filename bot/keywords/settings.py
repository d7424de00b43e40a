"""One ``[[keywords]]`` rule as configured: triggers, what it gives, how it looks, when it works."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.clock import CHINA
from bot.keywords.patterns import shown
from bot.keywords.triggers import INDEXES, MATCH_MODES, TEXT
from bot.wechat.replies import ReplyValue, TextReply

PICKUP_LINE = "\n电脑下载：打开 {pickup_url} 输入提取码 {code}"  # left out when codes are off
DEFAULT_REPLY = "点击下载「{filename}」（{minutes} 分钟内有效）：\n{url}" + PICKUP_LINE
DEFAULT_ANCHOR_REPLY = (
    '<a href="{url}">点击下载「{filename}」</a>（{minutes} 分钟内有效）' + PICKUP_LINE
)
DEFAULT_TITLE = "{filename}"
DEFAULT_DESCRIPTION = "点击打开下载（{minutes} 分钟内有效）"
DEFAULT_INACTIVE = "「{keyword}」现在不在开放时间内（北京时间 {window}）。"
DEFAULT_ENDED = "「{keyword}」已于北京时间 {end} 结束。"  # the default's wording once it is over
WINDOW_FORMAT = "%Y-%m-%d %H:%M"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # a passive image reply: no GIF (WeChat refuses it)
LINK_STYLES = ("text", "anchor", "news")  # how a rule's links are worded (bot.keywords.router)
LINK_NAMES = ("url", "filename", "minutes", "code", "pickup_url")
INACTIVE_NAMES = ("keyword", "window")


class KeywordSettings(BaseModel):
    """A rule: ``match`` (or ``click`` / ``scene``) → ``file``, ``files`` or a plain ``reply``."""

    model_config = ConfigDict(extra="forbid")

    match: str | list[str] = ""
    mode: str = "exact"  # a key of MATCH_MODES
    file: str = ""
    files: list[str] = Field(default_factory=list)
    reply: str = ""
    style: str = "text"  # one of LINK_STYLES, "image", or a key of FIXED_REPLIES
    image: str = ""  # style "image": a PNG or JPEG in files.dir, shown as a picture
    title: str = DEFAULT_TITLE
    description: str = DEFAULT_DESCRIPTION
    picurl: str = ""
    click: str = Field(default="", max_length=128)
    scene: str = Field(default="", max_length=64)
    active_from: str = ""
    active_until: str = ""
    inactive_reply: str = DEFAULT_INACTIVE
    max_downloads: int | None = Field(default=None, ge=0)

    @property
    def aliases(self) -> list[str]:
        """The texts this rule matches, as written."""
        return [self.match] if isinstance(self.match, str) and self.match else list(self.match)

    @property
    def name(self) -> str:
        """How logs, metrics and pages name the rule: first alias, else its first keyed trigger."""
        keyed = (getattr(self, i.field) for name, i in INDEXES.items() if name != TEXT)
        return next(iter(self.aliases), "") or next((v for v in keyed if v), "")

    @property
    def file_list(self) -> list[str]:
        """The files a link is issued for (none: the rule answers ``reply`` only)."""
        return [self.file] if self.file else list(self.files)

    @property
    def link_templates(self) -> dict[str, str]:
        """What a reply carrying links fills in: the card's fields for news, else ``reply``."""
        if self.style == "news":
            return {key: getattr(self, key) for key in ("title", "description", "picurl")}
        return {"reply": self.reply}

    @property
    def window(self) -> tuple[float | None, float | None]:
        """``active_from`` / ``active_until`` as epoch seconds (None: open that side)."""
        return _beijing(self.active_from), _beijing(self.active_until)

    @model_validator(mode="after")
    def _consistent(self) -> KeywordSettings:
        if not any(getattr(self, index.field) for index in INDEXES.values()):
            raise ValueError(f"needs a trigger: {' or '.join(i.field for i in INDEXES.values())}")
        if any(not isinstance(a, str) or not a.strip() for a in self.aliases):
            raise ValueError("match holds an empty alias")
        if self.file and self.files:
            raise ValueError("give file or files, not both")
        if any(not f for f in self.files):
            raise ValueError("files holds an empty name")
        if self.mode not in MATCH_MODES:
            raise ValueError(f"mode must be one of {', '.join(MATCH_MODES)}")
        compile_alias = MATCH_MODES[self.mode]
        for alias in self.aliases:
            try:
                if compile_alias is not None:
                    compile_alias(self.name, alias, str)
            except ValueError as exc:
                raise ValueError(
                    f"match {shown(alias)} is not a valid {self.mode}: {exc}"
                ) from None
        styles = (*LINK_STYLES, "image", *FIXED_REPLIES)
        if self.style not in styles:
            raise ValueError(f"style must be one of {', '.join(styles)}")
        if self.style in FIXED_REPLIES and self.file_list:
            raise ValueError(f"style {self.style!r} answers on its own: drop file and files")
        if (self.style == "image") != bool(self.image):
            raise ValueError(
                'style "image" and image go together: image = "poster.png" (a PNG or JPEG in'
                ' files.dir) with style = "image"'
            )
        if self.image:
            if self.file_list or self.reply:
                raise ValueError(
                    'style "image" answers with the picture alone: drop file, files and reply'
                    " (a link needs another rule)"
                )
            if Path(self.image).suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(
                    f"image {self.image!r}: WeChat shows only PNG or JPEG in a reply (not GIF):"
                    " convert it to .png or .jpg"
                )
        elif not self.file_list:
            if not self.reply and self.style not in FIXED_REPLIES:
                raise ValueError("gives nothing: set file, files, reply (a text answer) or image")
            if self.style == "news":
                raise ValueError('style "news" needs a file: the card opens the link')
        if self.style == "news" and len(self.file_list) > 1:
            raise ValueError(
                'style "news" carries one link: use style "text" or "anchor" for files'
            )
        if self.picurl and urlsplit(self.picurl).scheme not in ("http", "https"):
            raise ValueError("picurl must be an absolute http(s) URL")
        for key in ("active_from", "active_until"):
            try:
                _beijing(getattr(self, key))
            except ValueError:
                raise ValueError(f"{key} must look like 2026-12-01 09:00 (Beijing time)") from None
        start, end = self.window
        if start is not None and end is not None and start >= end:
            raise ValueError("active_from must be before active_until")
        if not self.reply and self.file_list:
            self.reply = DEFAULT_ANCHOR_REPLY if self.style == "anchor" else DEFAULT_REPLY
        return self

    def templates(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(key, template, placeholders) of every text this rule formats."""
        link: tuple[str, ...] = LINK_NAMES if self.file_list else ()
        found: list[tuple[str, str, tuple[str, ...]]] = [
            ("reply", self.reply, link),
            ("inactive_reply", self.inactive_reply, INACTIVE_NAMES),
        ]
        if self.style == "news":
            found += [(k, getattr(self, k), link) for k in ("title", "description", "picurl")]
        return found


# How a rule that gives no file answers, by its ``style`` (one with no entry: its ``reply`` as
# text). A new reply kind is its class in ``bot.wechat.replies``, its ``style`` value and fields
# on ``KeywordSettings``, and one entry here. (``image`` is apart: WeChat must hold the picture
# first, so ``bot.answers`` uploads it.)
FIXED_REPLIES: dict[str, Callable[[KeywordSettings, str], ReplyValue]] = {}


def fixed_reply(rule: KeywordSettings, greeting: str = "") -> ReplyValue:
    """The reply of a rule that gives no file, after ``greeting`` (the welcome, on a follow)."""
    build = FIXED_REPLIES.get(rule.style)
    return build(rule, greeting) if build else TextReply(joined(greeting, rule.reply))


def joined(*parts: str) -> str:
    """Texts one after another, a blank line apart (empty ones left out)."""
    return "\n\n".join(p for p in parts if p)


def _beijing(value: str) -> float | None:
    if not value:
        return None
    return datetime.strptime(value.strip(), WINDOW_FORMAT).replace(tzinfo=CHINA).timestamp()


def link_limit(rule: KeywordSettings, default: int) -> int:
    """Downloads per link issued by ``rule`` (0: unlimited): its own, else ``default``."""
    return default if rule.max_downloads is None else rule.max_downloads


def window_text(rule: KeywordSettings) -> str:
    """The window as the follower reads it: ``2026-12-01 09:00 至 2026-12-07 18:00``."""
    start, end = rule.active_from.strip(), rule.active_until.strip()
    if start and end:
        return f"{start} 至 {end}"
    return f"{start} 起" if start else f"至 {end}"


def inactive_text(rule: KeywordSettings, *, ended: bool) -> str:
    """What a follower reads outside the window: the rule's ``inactive_reply``, or by default,
    once the window is over, that it ended (not "北京时间 至 …")."""
    if ended and rule.inactive_reply == DEFAULT_INACTIVE:
        return DEFAULT_ENDED.format(keyword=rule.name, end=rule.active_until.strip())
    return rule.inactive_reply.format(keyword=rule.name, window=window_text(rule))
