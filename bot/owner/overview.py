"""The owner's overview: one period's numbers from the same records and sums as `bot stats` (pure).

``overview(period, now, links, attempts)`` takes what ``store.links_since(start)`` and
``store.attempts_since(start)`` return, as `bot stats` does, and adds it up with its own
``summarize``; the page only shows the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.clock import CHINA
from bot.state.base import Attempt, LinkRecord, Outcome
from bot.state.report import FileStats, summarize

DAY = 86400.0
TOP = 10
# Refusals, each with how the owner's page names it (served or cut-off downloads are not here).
REASONS: dict[str, str] = {
    Outcome.EXPIRED: "链接过期 · expired",
    Outcome.BAD_TOKEN: "无效链接 · bad token",
    Outcome.EXHAUSTED: "次数用完 · used up",
    Outcome.REVOKED: "已停用 · revoked",
    Outcome.MISSING: "文件不在 · file missing",
    Outcome.UNAVAILABLE: "存储无响应 · store down",
    Outcome.BUSY: "下载繁忙 · busy",
    Outcome.BAD_RANGE: "范围错误 · bad range",
    Outcome.THROTTLED: "请求过频 · throttled",
}
# Every outcome of a request for a link, as a link's story names it.
OUTCOMES: dict[str, str] = {
    Outcome.SERVED: "已送出 · served",
    Outcome.ABORTED: "中途断开 · aborted",
    Outcome.CHANGED: "文件已换 · changed",
    Outcome.STALLED: "停滞断开 · stalled",
    Outcome.LAPSED: "计数失效 · lapsed",
    **REASONS,
}


def outcome_text(outcome: str) -> str:
    """An attempt's outcome as the owner's page shows it (an unknown one as it is)."""
    return OUTCOMES.get(outcome, outcome)


@dataclass(frozen=True, slots=True)
class Period:
    """Today (hour by hour), or the last ``days`` days including today (day by day)."""

    key: str
    label: str
    days: int

    def midnight(self, now: float) -> float:
        """00:00 Beijing time of the day ``now`` falls in."""
        day = datetime.fromtimestamp(now, CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.timestamp()

    def start(self, now: float) -> float:
        """When the period begins: 00:00 Beijing time, ``days - 1`` days before today."""
        return self.midnight(now) - (self.days - 1) * DAY

    def columns(self, now: float) -> list[tuple[float, str]]:
        """Each chart column's start and label: 24 hours for today, else one per day."""
        start = self.start(now)
        if self.days == 1:
            return [(start + h * 3600, f"{h:02d}") for h in range(24)]
        days = [datetime.fromtimestamp(start + d * DAY, CHINA) for d in range(self.days)]
        return [(day.timestamp(), f"{day.month}/{day.day}") for day in days]


PERIODS = {
    p.key: p
    for p in (
        Period("today", "今天 · Today", 1),
        Period("7d", "7 天", 7),
        Period("30d", "30 天", 30),
    )
}


@dataclass(slots=True)
class KeywordCount:
    """A rule's links issued and complete downloads of those links."""

    keyword: str
    links: int = 0
    downloads: int = 0


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the chart: its label, links issued and complete downloads in it."""

    label: str
    links: int
    downloads: int


@dataclass(frozen=True, slots=True)
class Overview:
    """What the owner's overview shows for one period (the totals are `bot stats`' total row)."""

    period: Period
    start: float
    files: list[FileStats]  # `bot stats`' rows
    bad_tokens: int
    links: int
    followers: int
    downloads: int
    bytes_sent: int
    expired: int
    downloaded_links: int  # links of this period with at least one complete download
    downloading_followers: int
    refusals: list[tuple[str, int]]  # (reason as shown, count), most first
    columns: list[Column]
    keywords: list[KeywordCount] = field(default_factory=list)

    @property
    def share(self) -> float:
        """The share of this period's links that led to a complete download (0 to 1)."""
        return self.downloaded_links / self.links if self.links else 0.0

    @property
    def top_files(self) -> list[FileStats]:
        """Files by complete downloads, then links."""
        ranked = sorted(self.files, key=lambda r: (-r.completed, -r.links, r.file))
        return ranked[:TOP]


def keyword_counts(
    links: Iterable[LinkRecord], attempts: Iterable[Attempt]
) -> dict[str, KeywordCount]:
    """Links and complete downloads per rule (a download counts for the rule of its link)."""
    counts: dict[str, KeywordCount] = {}
    keyword_of: dict[str, str] = {}
    for link in links:
        counts.setdefault(link.keyword, KeywordCount(link.keyword)).links += 1
        keyword_of[link.link_id] = link.keyword
    for attempt in attempts:
        keyword = keyword_of.get(attempt.link_id)
        if attempt.counted and keyword is not None:
            counts[keyword].downloads += 1
    return counts


def _columns(
    period: Period, now: float, links: Sequence[LinkRecord], attempts: Sequence[Attempt]
) -> list[Column]:
    starts = period.columns(now)
    edges = [t for t, _ in starts[1:]] + [float("inf")]

    def index(at: float) -> int | None:
        if at < starts[0][0]:
            return None
        return next(i for i, edge in enumerate(edges) if at < edge)

    issued, done = Counter[int](), Counter[int]()
    for link in links:
        if (i := index(link.issued_at)) is not None:
            issued[i] += 1
    for attempt in attempts:
        if attempt.counted and (i := index(attempt.at)) is not None:
            done[i] += 1
    return [Column(label, issued[i], done[i]) for i, (_, label) in enumerate(starts)]


def overview(
    period: Period, now: float, links: Sequence[LinkRecord], attempts: Sequence[Attempt]
) -> Overview:
    """The overview of ``period`` from the links and attempts since ``period.start(now)``."""
    files, bad_tokens = summarize(links, attempts)
    counted = {a.link_id for a in attempts if a.counted}
    downloaded = [link for link in links if link.link_id in counted]
    refusals = Counter[str]()
    for attempt in attempts:
        if attempt.outcome in REASONS:
            refusals[REASONS[attempt.outcome]] += attempt.count
    keywords = sorted(keyword_counts(links, attempts).values(), key=lambda k: (-k.links, k.keyword))
    return Overview(
        period=period,
        start=period.start(now),
        files=files,
        bad_tokens=bad_tokens,
        links=sum(r.links for r in files),
        followers=len(set().union(*(r.followers for r in files))),
        downloads=sum(r.completed for r in files),
        bytes_sent=sum(r.bytes_sent for r in files),
        expired=sum(r.expired for r in files),
        downloaded_links=len(downloaded),
        downloading_followers=len({link.openid for link in downloaded}),
        refusals=refusals.most_common(),
        columns=_columns(period, now, links, attempts),
        keywords=keywords[:TOP],
    )


def size_text(size: int) -> str:
    """Bytes as an owner reads them: ``316 B``, ``3.2 MB`` (powers of 1024)."""
    units, value, step = ("B", "KB", "MB", "GB", "TB"), float(size), 0
    while value >= 1024 and step < len(units) - 1:
        value, step = value / 1024, step + 1
    return f"{size} B" if step == 0 else f"{value:.1f} {units[step]}"


def mask_openid(openid: str) -> str:
    """A follower's openid as the page shows it: enough to tell two apart, not to copy one."""
    if len(openid) <= 8:
        return openid[:2] + "…"
    return f"{openid[:4]}…{openid[-4:]}"
