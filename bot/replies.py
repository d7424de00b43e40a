"""What the bot says to a message: routing, link issuing and reply texts (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.config import KeywordSettings
from bot.links import Link, LinkSigner
from bot.pickup import PATH as PICKUP_PATH
from bot.pickup import link_template
from bot.routing import Action, Router
from bot.wechat import Message

CHINA = timezone(timedelta(hours=8))


class Responder:
    """Routes a parsed message and words the replies; state lives in ``bot.answers``."""

    def __init__(
        self, router: Router, signer: LinkSigner, public_url: str, *, pickup_codes: bool = False
    ) -> None:
        self._router = router
        self._signer = signer
        self._base = public_url.rstrip("/") + "/d/"
        self._pickup_url = public_url.rstrip("/") + PICKUP_PATH
        self.pickup_codes = pickup_codes

    def route(self, message: Message) -> Action:
        """What to do with one message."""
        return self._router.route(message)

    def link_reply(self, keyword: KeywordSettings) -> tuple[str, Link]:
        """A fresh link to the keyword's file and the reply text carrying it (no pick-up code)."""
        token, link = self.issue(keyword)
        return self.link_text(keyword, token), link

    def wants_code(self, keyword: KeywordSettings) -> bool:
        """True when codes are on and this keyword's reply shows one."""
        return self.pickup_codes and "{code}" in keyword.reply

    def issue(self, keyword: KeywordSettings) -> tuple[str, Link]:
        """A fresh token for the keyword's file, and its link."""
        return self._signer.issue(keyword.file)

    def link_text(self, keyword: KeywordSettings, token: str, code: str = "") -> str:
        """The reply carrying a token; lines naming {code} are left out when there is no code."""
        template = link_template(keyword.reply, codes=bool(code))
        return template.format(
            url=self._base + token,
            filename=keyword.file,
            minutes=max(1, self._signer.ttl // 60),
            code=code,
            pickup_url=self._pickup_url,
        )


def quota_text(limit: int, retry_at: float, now: float) -> str:
    """The friendly refusal for a follower past ``links_per_user_per_hour``."""
    at = datetime.fromtimestamp(retry_at, CHINA).strftime("%H:%M")
    minutes = max(1, int(retry_at - now + 59) // 60)
    return (
        f"你在一小时内已经获取了 {limit} 个下载链接，先休息一下吧。"
        f"请在 {at}（北京时间，约 {minutes} 分钟后）再发送关键词。"
    )
