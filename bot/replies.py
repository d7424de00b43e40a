"""What the bot says to a message: routing, link issuing and reply texts (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.config import KeywordSettings
from bot.links import Link, LinkSigner
from bot.routing import Action, Router
from bot.wechat import Message

CHINA = timezone(timedelta(hours=8))


class Responder:
    """Routes a parsed message and words the replies; state lives in ``bot.answers``."""

    def __init__(
        self, router: Router, signer: LinkSigner, public_url: str, *, max_downloads: int = 0
    ) -> None:
        self._router = router
        self._signer = signer
        self._base = public_url.rstrip("/") + "/d/"
        self._max_downloads = max_downloads  # [links] max_downloads, unless the keyword says

    def route(self, message: Message) -> Action:
        """What to do with one message."""
        return self._router.route(message)

    def link_reply(self, keyword: KeywordSettings) -> tuple[str, Link]:
        """A fresh link to the keyword's file, on the keyword's terms, and the reply carrying it."""
        token, link = self._signer.issue(
            keyword.file,
            keyword=keyword.match,
            max_downloads=link_limit(keyword, self._max_downloads),
        )
        text = keyword.reply.format(
            url=self._base + token,
            filename=keyword.file,
            minutes=max(1, self._signer.ttl // 60),
        )
        return text, link


def link_limit(keyword: KeywordSettings, default: int) -> int:
    """Downloads per link issued by ``keyword`` (0: unlimited): its own, else ``default``."""
    return default if keyword.max_downloads is None else keyword.max_downloads


def quota_text(limit: int, retry_at: float, now: float) -> str:
    """The friendly refusal for a follower past ``links_per_user_per_hour``."""
    at = datetime.fromtimestamp(retry_at, CHINA).strftime("%H:%M")
    minutes = max(1, int(retry_at - now + 59) // 60)
    return (
        f"你在一小时内已经获取了 {limit} 个下载链接，先休息一下吧。"
        f"请在 {at}（北京时间，约 {minutes} 分钟后）再发送关键词。"
    )
