"""Prometheus counters for one app instance, in a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# WeChat gives up after 5 s; the buckets resolve the range that matters below that.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


class Metrics:
    """The bot's counters; each app (and so each worker process) has its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.links_issued = Counter(
            "bot_links_issued",
            "Download links handed out, by keyword.",
            ["keyword"],
            registry=self.registry,
        )
        self.downloads = Counter(
            "bot_downloads",
            "Finished file responses, by HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "bot_download_bytes", "Bytes of files sent.", registry=self.registry
        )
        self.landing_pages = Counter(
            "bot_landing_pages",
            "Landing pages shown instead of a file, by kind of client.",
            ["agent"],
            registry=self.registry,
        )
        self.expired = Counter(
            "bot_links_expired", "Requests for expired links.", registry=self.registry
        )
        self.bad_tokens = Counter(
            "bot_bad_tokens", "Requests with tampered or garbage tokens.", registry=self.registry
        )
        self.refusals = Counter(
            "bot_download_refusals",
            "Download requests refused, by outcome (expired, exhausted, busy...).",
            ["outcome"],
            registry=self.registry,
        )
        self.audit_dropped = Counter(
            "bot_audit_rows_dropped",
            "Audit rows the store could not take (queue full, store down), by outcome; each"
            " is counted in a summary row once the store takes writes again.",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "bot_webhook_seconds",
            "Time to answer a WeChat callback.",
            buckets=WEBHOOK_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
