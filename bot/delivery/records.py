"""What happened to each download request, written down: log line, metrics, audit row.

``refused`` is the one place a refused request is recorded, ``served`` the one place a response
that went out is; both go through the audit writer in batches and, for refusals, the flood cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from bot.clock import Clock
from bot.config import Settings
from bot.delivery.auditcap import RefusalCap
from bot.delivery.auditwriter import AuditWriter
from bot.keywords.settings import link_limit
from bot.metrics import Metrics
from bot.state import Attempt, Outcome


def download_limits(settings: Settings) -> dict[str, int]:
    """File → downloads per link, the strictest of its keywords' (for tokens issued before #9,
    which do not carry their own limit)."""
    limits: dict[str, int] = {}
    for keyword in settings.keywords:
        limit = link_limit(keyword, settings.links.max_downloads)
        for name in keyword.file_list:
            known = limits.get(name)
            limits[name] = limit if not known else min(known, limit or known)
    return limits


@dataclass(frozen=True, slots=True)
class Visit:
    """Who asked, and how, as the audit trail records it."""

    ip: str
    user_agent: str
    range: str
    method: str = "GET"


class Records:
    """The log lines, metrics and audit rows of download requests."""

    def __init__(self, metrics: Metrics, cap: RefusalCap, audit: AuditWriter, clock: Clock):
        self._metrics, self._cap, self._audit, self._clock = metrics, cap, audit, clock

    def refused(
        self, visit: Visit, outcome: Outcome, status: int, link_id: str = "", file: str = ""
    ) -> bool:
        """The one place a refused request is recorded: an audit row and a metric.

        Past ``[limits] audit_rows_per_ip_per_minute`` for its address, or
        ``audit_rows_per_minute`` for all of them, a refusal is only counted into a summary row
        (``delivery.auditcap``) and False says: log nothing either; past
        ``log_lines_per_second`` False says so too. A throttled request writes no row of its own
        (its bad tokens did), but counts towards the cap.
        """
        self._metrics.refusals.labels(outcome.value).inc()
        for summary in self._cap.due():
            self._audit.put(summary)
        if not self._cap.admit(visit.ip):
            self._cap.count(visit.ip, outcome, status)
            return False
        if outcome is not Outcome.THROTTLED:
            self._audit.put(
                Attempt(
                    self._clock(),
                    outcome,
                    link_id,
                    file,
                    visit.ip,
                    visit.user_agent,
                    visit.range,
                    status,
                    method=visit.method,
                )
            )
        return self._cap.line()

    def may_log(self) -> bool:
        """True when a refusal with no audit row (webhook, wrong code) may log its line now."""
        return self._cap.line()

    def served(
        self,
        link_id: str,
        file: str,
        visit: Visit,
        status: int,
        sent: int,
        complete: bool,
        outcome: Outcome,
        counted: bool,
    ) -> None:
        """A response that went out: its log line, metrics and audit row."""
        v = visit
        logger.info(
            "download id={} file={!r} ip={} ua={!r} method={} range={} status={} bytes={}"
            " complete={} outcome={} counted={}",
            link_id,
            file,
            v.ip,
            v.user_agent,
            v.method,
            v.range or "-",
            status,
            sent,
            complete,
            outcome.value,
            counted,
        )
        self._metrics.downloads.labels(str(status)).inc()
        self._metrics.bytes_sent.inc(sent)
        row = (v.ip, v.user_agent, v.range, status, sent, complete, counted, v.method)
        self._audit.put(Attempt(self._clock(), outcome, link_id, file, *row))

    async def drain(self) -> None:
        """Write the summaries and rows still waiting (at shutdown)."""
        for summary in self._cap.due(everything=True):
            self._audit.put(summary)
        await self._audit.drain()
