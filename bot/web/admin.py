"""``/admin``: the owner's pages (overview, links and a link's story, rules), each behind the door.

The numbers come from the store calls `bot stats` and `bot audit` make (``links_since``,
``attempts_since``, ``link``, ``usage``), added up by ``bot.owner.overview``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException

from bot.errors import BotError, LinkExpired, StoreUnavailable
from bot.keywords.table import rows
from bot.owner.chart import bar_chart
from bot.owner.overview import (
    DAY,
    PERIODS,
    REASONS,
    keyword_counts,
    mask_openid,
    outcome_text,
    overview,
    size_text,
)
from bot.state import LinkRecord, Store
from bot.state.report import when
from bot.web.adminlogin import Owner, OwnerDep, ask, checked_form, render
from bot.web.deps import Services, ServicesDep, client_ip

QUERY_SECONDS = 15.0  # a month of audit rows from a busy store
HEALTH_SECONDS = 2.0
RECENT = 20  # links listed on the search page, and of one follower
MAX_QUERY = 600  # a pasted link is ~150 characters
READ = ["GET", "HEAD"]
ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HELPERS = {"when": when, "mask": mask_openid, "size": size_text, "outcome": outcome_text}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Health:
    """The store as the overview shows it: which kind, whether it answers, how fast."""

    kind: str
    problem: str
    millis: int
    keep_days: int


async def store_health(services: Services) -> Health:
    """Ping the store (the same probe as /healthz), timed."""
    began = time.perf_counter()
    try:
        with anyio.fail_after(HEALTH_SECONDS):
            problem = "" if await services.health() else "did not answer"
    except (StoreUnavailable, TimeoutError) as exc:
        problem = str(exc) or "no answer within 2 s"
    millis = round((time.perf_counter() - began) * 1000)
    kind = services.settings.state.url.split(":", 1)[0]  # never the URL: it may hold a password
    return Health(kind, problem, millis, services.settings.state.keep_days)


def page(
    services: Services, owner: Owner, name: str, tab: str, status: int = 200, **context: object
) -> HTMLResponse:
    """An owner page with the bar (tabs, log out) and the shared helpers."""
    return render(services, name, status, owner=owner, tab=tab, **HELPERS, **context)


@router.api_route("/admin", methods=READ)
async def overview_page(services: ServicesDep, owner: OwnerDep, period: str = "today") -> Response:
    """Today, 7 or 30 days: links, downloads, refusals, a chart, top keywords and files."""
    chosen = PERIODS.get(period, PERIODS["today"])
    now = services.clock()
    start = chosen.start(now)
    links = await ask(services.store.links_since(start), QUERY_SECONDS)
    attempts = await ask(services.store.attempts_since(start), QUERY_SECONDS)
    view = overview(chosen, now, links, attempts)
    columns = view.columns
    chart = bar_chart(
        [c.label for c in columns], [[c.links for c in columns], [c.downloads for c in columns]]
    )
    return page(
        services,
        owner,
        "admin_overview",
        "overview",
        title=f"概览 · {chosen.label}",
        periods=PERIODS.values(),
        view=view,
        chart=chart,
        health=await store_health(services),
    )


async def _records(store: Store, ids: list[str]) -> list[LinkRecord]:
    """The recorded links of these ids, newest first (at most RECENT)."""
    found = [await ask(store.link(i)) for i in ids[-RECENT * 5 :]]
    links = sorted((x for x in found if x is not None), key=lambda x: -x.issued_at)
    return links[:RECENT]


def _pasted_link(services: Services, text: str) -> str | None:
    """The link id of a pasted ``…/d/<token>`` link (expired ones too), if it is one of ours."""
    token = text.rsplit("/d/", 1)[-1].split("?")[0].split("#")[0]
    try:
        return services.signer.verify(token).link_id
    except LinkExpired as exc:
        return exc.link_id
    except BotError:
        return None


@router.api_route("/admin/links", methods=READ)
async def links_page(services: ServicesDep, owner: OwnerDep, q: str = "") -> Response:
    """Find a link by its id, a pasted link or a follower's openid; else the latest links."""
    query, store = q.strip()[:MAX_QUERY], services.store
    if query:
        link_id = _pasted_link(services, query) if "/d/" in query else query
        if link_id and await ask(store.link(link_id)) is not None:
            return RedirectResponse(f"/admin/links/{quote(link_id, safe='')}", 303)
        found = await _records(store, await ask(store.links_of(openid=query)))
    else:
        since = await ask(store.links_since(services.clock() - DAY), QUERY_SECONDS)
        found = sorted(since, key=lambda x: -x.issued_at)[:RECENT]
    return page(
        services,
        owner,
        "admin_links",
        "links",
        title="链接 · Links",
        query=query,
        found=found,
        now=services.clock(),
    )


@router.api_route("/admin/links/{link_id}", methods=READ)
async def link_page(link_id: str, services: ServicesDep, owner: OwnerDep) -> Response:
    """One link's story: its record, every request for it and its outcome, and Revoke."""
    store = services.store
    link = await ask(store.link(link_id))
    if link is None:
        return page(
            services, owner, "admin_link", "links", 404, title="链接 · Link", link_id=link_id
        )
    usage = await ask(store.usage(link_id))
    attempts = await ask(store.attempts_since(0, link_id), QUERY_SECONDS)
    siblings = await _records(store, await ask(store.links_of(openid=link.openid)))
    return page(
        services,
        owner,
        "admin_link",
        "links",
        title=f"链接 {link_id}",
        link=link,
        usage=usage,
        attempts=attempts,
        counted=sum(a.counted for a in attempts),
        refusals=REASONS,
        siblings=siblings,
        now=services.clock(),
    )


@router.post("/admin/links/{link_id}/revoke")
async def revoke(
    request: Request, link_id: str, services: ServicesDep, owner: OwnerDep
) -> Response:
    """Revoke one link (a CSRF-checked form); back to its story."""
    await checked_form(request, owner)
    new = await ask(services.store.revoke([link_id]))
    state = "revoked" if new else "was already revoked"
    logger.info("owner: link id={} {} ip={}", link_id, state, client_ip(request))
    return RedirectResponse(f"/admin/links/{quote(link_id, safe='')}", 303)


def _found(services: Services) -> dict[str, tuple[int, str]]:
    """Size and name of each rule's file where the delivery keeps it (blocking: a bucket HEADs)."""
    found: dict[str, tuple[int, str]] = {}
    for name in {name for rule in services.settings.keywords for name in rule.file_list}:
        try:
            found[name] = (services.catalog.open(name).size, name)
        except BotError:
            found[name] = (0, f"{name} (missing)")
    return found


@router.api_route("/admin/rules", methods=READ)
async def rules_page(services: ServicesDep, owner: OwnerDep) -> Response:
    """`bot check`'s rule table, each rule with its links and downloads of the last 7 days."""
    settings, week = services.settings, PERIODS["7d"]
    start = week.start(services.clock())
    links = await ask(services.store.links_since(start), QUERY_SECONDS)
    counts = keyword_counts(links, await ask(services.store.attempts_since(start), QUERY_SECONDS))
    found = await anyio.to_thread.run_sync(_found, services)
    table = [
        (rows([rule], found, settings.links.max_downloads), counts.get(rule.name))
        for rule in settings.keywords
    ]
    return page(
        services,
        owner,
        "admin_rules",
        "rules",
        title="规则 · Rules",
        table=table,
        menu=settings.menu,
    )


@router.api_route("/admin", methods=ANY)
@router.api_route("/admin/{rest:path}", methods=ANY)
async def elsewhere(owner: OwnerDep) -> Response:
    """Any other /admin path: the login page without a session, else 404."""
    raise HTTPException(404, "Not Found")
