"""What the bot says to a message: routing plus link issuing (no I/O besides the log line)."""

from __future__ import annotations

from loguru import logger

from bot.links import LinkSigner
from bot.metrics import Metrics
from bot.routing import Router, SendLink, SendText
from bot.wechat import Message


class Responder:
    """Turns a parsed message into reply text, or None for ``success``."""

    def __init__(
        self,
        router: Router,
        signer: LinkSigner,
        public_url: str,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._router = router
        self._signer = signer
        self._base = public_url.rstrip("/") + "/d/"
        self._metrics = metrics or Metrics()

    def respond(self, message: Message) -> str | None:
        """Reply text for one message; issues (and logs) a fresh link for a keyword."""
        action = self._router.route(message)
        if isinstance(action, SendText):
            return action.text
        if isinstance(action, SendLink):
            keyword = action.keyword
            token, link = self._signer.issue(keyword.file)
            logger.info(
                "link issued id={} keyword={!r} file={!r} openid={} expires={}",
                link.link_id,
                keyword.match,
                keyword.file,
                message.source,
                link.expires_at.isoformat(),
            )
            self._metrics.links_issued.labels(keyword.match).inc()
            return keyword.reply.format(
                url=self._base + token,
                filename=keyword.file,
                minutes=max(1, self._signer.ttl // 60),
            )
        return None
