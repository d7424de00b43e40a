"""Texts the bot words outside routing (the quota refusal) and Beijing time (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


def quota_text(limit: int, retry_at: float, now: float) -> str:
    """The friendly refusal for a follower past ``links_per_user_per_hour``."""
    at = datetime.fromtimestamp(retry_at, CHINA).strftime("%H:%M")
    minutes = max(1, int(retry_at - now + 59) // 60)
    return (
        f"你在一小时内已经获取了 {limit} 个下载链接，先休息一下吧。"
        f"请在 {at}（北京时间，约 {minutes} 分钟后）再发送关键词。"
    )
