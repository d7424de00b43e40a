"""The door of ``/admin``: off without a password, the login form, the session, CSRF, logout.

Every ``/admin`` route asks for ``OwnerDep``: with no password stored it answers 404, without a
valid session a 303 to the login page; forms that change something ask for ``checked_form``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import parse_qs

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from loguru import logger

from bot.clock import Clock
from bot.config import Settings
from bot.errors import RETRY_AFTER, StoreUnavailable
from bot.owner.password import fingerprint, verify_password
from bot.owner.session import LoginThrottle, Session, Sessions
from bot.state import STORE_TIMEOUT, bounded
from bot.web.bodies import read_body
from bot.web.deps import Services, ServicesDep, client_ip
from bot.web.pickup import PAGE_HEADERS

T = TypeVar("T")
LOGIN = "/admin/login"
COOKIE = "bot_admin"
MAX_FORM = 4096  # bytes of a form body
FORM_TIMEOUT = 10.0


class AdminOff(Exception):
    """No password is stored: nothing under /admin exists."""


class LoginFirst(Exception):
    """No valid session: the login page."""


class StoreDown(Exception):
    """The store (which keeps the password) does not answer."""


class FormRefused(Exception):
    """A form without this session's CSRF token, or not a form at all."""


class Unanswered(Exception):
    """A logged-in owner's page needs the store, which does not answer."""


async def ask(call: Awaitable[T], seconds: float = STORE_TIMEOUT) -> T:
    """A store call for an owner's page; Unanswered (a 503 page) when the store fails."""
    try:
        return await bounded(call, seconds)
    except StoreUnavailable as exc:
        logger.error("owner page: the store does not answer: {}", exc)
        raise Unanswered from None


@dataclass(frozen=True, slots=True)
class OwnerDesk:
    """What the door needs, built once: sessions, one password check at a time."""

    sessions: Sessions
    secure: bool  # [server] public_url is https: the cookie is Secure
    checking: asyncio.Semaphore  # scrypt takes 128 MiB: never two at once in a process

    @classmethod
    def build(cls, settings: Settings, clock: Clock) -> OwnerDesk:
        """The desk for these settings (sessions signed with ``[links] secret_keys``)."""
        return cls(
            Sessions(settings.links.secret_keys, clock=clock),
            settings.server.public_url.startswith("https://"),
            asyncio.Semaphore(1),
        )


@dataclass(frozen=True, slots=True)
class Owner:
    """A logged-in owner's request: the session and the CSRF token its forms carry."""

    session: Session
    csrf: str


def desk_of(request: Request) -> OwnerDesk:
    """The app's owner desk (set by ``install``)."""
    desk: OwnerDesk = request.app.state.owner
    return desk


async def _asked(call: Awaitable[T]) -> T:
    """A store call of the door; StoreDown (the 503 page) when the store does not answer."""
    try:
        return await bounded(call, STORE_TIMEOUT)
    except StoreUnavailable as exc:
        logger.error("owner page: the store does not answer: {}", exc)
        raise StoreDown from None


async def stored_password(services: Services) -> str:
    """The stored hash; AdminOff when none is set, StoreDown when the store does not answer."""
    stored = await _asked(services.store.owner_password())
    if stored is None:
        raise AdminOff
    return stored


async def _owner(request: Request, services: ServicesDep) -> Owner:
    desk = desk_of(request)
    stored = await stored_password(services)
    session = desk.sessions.read(request.cookies.get(COOKIE), fingerprint(stored))
    if session is None:
        raise LoginFirst
    return Owner(session, desk.sessions.csrf(session))


OwnerDep = Annotated[Owner, Depends(_owner)]


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (first value of each field); FormRefused if it is not one."""
    declared = request.headers.get("content-length", "")
    body = await read_body(request.receive, declared, max_bytes=MAX_FORM, timeout=FORM_TIMEOUT)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused from None
    return {name: values[0] for name, values in fields.items()}


async def checked_form(request: Request, owner: Owner) -> dict[str, str]:
    """The form of an action that changes something; FormRefused without this session's token."""
    form = await read_form(request)
    if not desk_of(request).sessions.csrf_ok(owner.session, form.get("csrf", "")):
        logger.warning("owner form refused: no valid CSRF token ip={}", client_ip(request))
        raise FormRefused
    return form


def render(services: Services, name: str, status: int = 200, **context: object) -> HTMLResponse:
    """An owner page: never cached, no script, not framed, no referrer."""
    account = services.settings.server.account_name
    context.setdefault("description", "公众号文件下载 · 管理 · Owner's page")
    html = services.pages.render(name, account=account, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def login_page(
    services: Services, status: int = 200, problem: str = "", headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The login form, with what went wrong (if anything)."""
    response = render(services, "admin_login", status, title="登录 · Owner login", problem=problem)
    response.headers.update(headers or {})
    return response


router = APIRouter(include_in_schema=False)


@router.get(LOGIN)
async def login_form(request: Request, services: ServicesDep) -> Response:
    """The login form (404 while no password is set; to /admin when already logged in)."""
    stored = await stored_password(services)
    if desk_of(request).sessions.read(request.cookies.get(COOKIE), fingerprint(stored)):
        return RedirectResponse("/admin", 303)
    return login_page(services)


@router.post(LOGIN)
async def login(request: Request, services: ServicesDep) -> Response:
    """Check ``password``: the session cookie and /admin, or the form again (throttled)."""
    desk, ip = desk_of(request), client_ip(request)
    stored = await stored_password(services)
    limits = services.settings.limits
    throttle = LoginThrottle(
        services.store,
        limits.wrong_passwords_per_ip_per_hour,
        limits.wrong_passwords_per_hour,
        clock=services.clock,
    )
    if wait := await _asked(throttle.retry_after(ip)):
        return _throttled(services, ip, wait)
    password = (await read_form(request)).get("password", "")
    # One check at a time in a process, so the throttle counts every check before the next
    # (scrypt's memory too); other workers and instances count in the same store.
    async with desk.checking:
        if wait := await _asked(throttle.retry_after(ip)):
            return _throttled(services, ip, wait)
        try:
            right = await anyio.to_thread.run_sync(verify_password, password, stored)
        except ValueError as exc:
            logger.error(
                "owner login: the stored password is unusable ({}): run `bot admin-password`", exc
            )
            return login_page(services, 503, "密码无法校验 · Run `bot admin-password` again")
        if not right:
            await _asked(throttle.wrong(ip))
    if not right:
        logger.warning("owner login refused: wrong password ip={}", ip)
        return login_page(services, 401, "密码不对 · Wrong password")
    logger.info("owner logged in ip={}", ip)
    response = RedirectResponse("/admin", 303)
    response.set_cookie(
        COOKIE,
        desk.sessions.issue(fingerprint(stored)),
        max_age=desk.sessions.max_age,
        path="/admin",
        secure=desk.secure,
        httponly=True,
        samesite="strict",
    )
    return response


def _throttled(services: Services, ip: str, wait: int) -> HTMLResponse:
    logger.warning("owner login throttled ip={} retry_after={}s", ip, wait)
    problem = f"密码错误次数太多，请 {-(-wait // 60)} 分钟后再试 · Too many wrong passwords"
    return login_page(services, 429, problem, {"Retry-After": str(wait)})


@router.post("/admin/logout")
async def logout(request: Request, owner: OwnerDep) -> Response:
    """End the session in this browser (a new password ends every session)."""
    await checked_form(request, owner)
    logger.info("owner logged out ip={}", client_ip(request))
    response = RedirectResponse(LOGIN, 303)
    response.delete_cookie(
        COOKIE, path="/admin", secure=desk_of(request).secure, httponly=True, samesite="strict"
    )
    return response


async def _off(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Not Found", 404, {"Cache-Control": "no-store"})


async def _login_first(request: Request, exc: Exception) -> Response:
    return RedirectResponse(LOGIN, 303, {"Cache-Control": "no-store"})


async def _store_down(request: Request, exc: Exception) -> Response:
    problem = "存储暂时无响应，请稍后再试 · The store does not answer; try again shortly"
    return login_page(request.app.state.services, 503, problem, {"Retry-After": str(RETRY_AFTER)})


async def _unanswered(request: Request, exc: Exception) -> Response:
    services: Services = request.app.state.services
    return render(services, "admin_down", 503, title="请稍后再试 · Try again shortly")


async def _form_refused(request: Request, exc: Exception) -> Response:
    problem = "表单已过期，请返回刷新后再试 · This form has expired: go back, reload, try again"
    return PlainTextResponse(problem, 403, {"Cache-Control": "no-store"})


def install(app: FastAPI, settings: Settings, clock: Clock, pages: APIRouter) -> None:
    """Add the door, the owner's ``pages`` (checked by ``OwnerDep``) and their error answers."""
    app.state.owner = OwnerDesk.build(settings, clock)
    app.include_router(router)
    app.include_router(pages)
    app.add_exception_handler(AdminOff, _off)
    app.add_exception_handler(LoginFirst, _login_first)
    app.add_exception_handler(StoreDown, _store_down)
    app.add_exception_handler(FormRefused, _form_refused)
    app.add_exception_handler(Unanswered, _unanswered)
