"""The door of /admin over real sockets: off without a password, the login, the cookie, the
throttle, CSRF, and every route leading to the login page without a session."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.config import Settings, load_settings
from bot.owner.session import SESSION_SECONDS
from tests.conftest import Clock, LogCapture, RedisServer, RunningServer, write_config
from tests.helpers.admin import PASSWORD, ROUTES, csrf_of, login, on_store, set_password

ServeFn = Callable[[Settings], RunningServer]


def serve_with(tmp_path: Path, serve: ServeFn, **sections: dict[str, object]) -> RunningServer:
    """A running bot with these config sections and the owner's password set."""
    server = serve(load_settings(write_config(tmp_path, **sections)))
    set_password(server.settings, server.clock)
    return server


@pytest.fixture
def owned(tmp_path: Path, files_dir: Path, serve: ServeFn) -> RunningServer:
    return serve_with(tmp_path, serve)


def call(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def test_admin_is_off_until_a_password_is_set(server: RunningServer) -> None:
    with server.client() as client:
        answers = {route: call(client, *route) for route in [*ROUTES, ("GET", "/admin/login")]}
        tried = login(client)
    assert {r: a.status_code for r, a in answers.items()} == {r: 404 for r in answers}
    assert tried.status_code == 404 and "set-cookie" not in tried.headers
    set_password(server.settings, server.clock)
    with server.client() as client:
        assert client.get("/admin").headers["location"] == "/admin/login"
        assert client.get("/admin/login").status_code == 200


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(None, id="no-cookie"),
        pytest.param("forged", id="forged"),
        pytest.param("expired", id="expired"),
        pytest.param("old-password", id="old-password"),
    ],
)
def test_without_a_session_every_route_is_the_login(
    owned: RunningServer, clock: Clock, method: str, path: str, cookie: str | None
) -> None:
    with owned.client() as client:
        if cookie in ("expired", "old-password"):
            assert login(client).status_code == 303
            if cookie == "expired":
                clock.advance(SESSION_SECONDS + 1)
            else:
                set_password(owned.settings, clock, PASSWORD)  # the same password, a new hash
        forged = {"Cookie": "bot_admin=eyJzaWQiOiJ4IiwicHciOiJ4In0.Zz9xAA.forged"}
        headers = forged if cookie == "forged" else None
        data = {"csrf": "x"} if method == "POST" else None
        answer = call(client, method, path, data=data, headers=headers)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/admin/login"
    assert answer.text == "" and "set-cookie" not in answer.headers


def test_login_sets_a_strict_http_only_cookie_for_eight_hours(
    owned: RunningServer, clock: Clock, logs: LogCapture
) -> None:
    with owned.client() as client:
        page = client.get("/admin/login")
        assert page.status_code == 200 and 'name="password"' in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text.lower()
        answer = login(client)
        assert (answer.status_code, answer.headers["location"]) == (303, "/admin")
        cookie = answer.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert attributes == {"httponly", "max-age", "path", "samesite"}  # not Secure: http
        assert "Max-Age=28800" in cookie and "Path=/admin" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert client.get("/admin").status_code == 200
        assert client.get("/admin/login").headers["location"] == "/admin"  # already in
        clock.advance(SESSION_SECONDS - 1)
        assert client.get("/admin/rules").status_code == 200
        clock.advance(2)
        assert client.get("/admin/rules").headers["location"] == "/admin/login"
    assert logs.find("owner logged in ip=127.0.0.1")
    assert not any(PASSWORD in m for m in logs.messages())


def test_cookie_is_secure_when_public_url_is_https(
    tmp_path: Path, files_dir: Path, serve: ServeFn
) -> None:
    server = serve_with(tmp_path, serve, server={"public_url": "https://files.example.com"})
    with server.client() as client:
        cookie = login(client).headers["set-cookie"]
    assert "; Secure" in cookie or "; secure" in cookie


def test_wrong_passwords_are_throttled_per_address(
    tmp_path: Path, files_dir: Path, serve: ServeFn, clock: Clock, logs: LogCapture
) -> None:
    server = serve_with(tmp_path, serve, server={"trusted_proxies": ["127.0.0.1"]})
    wrong = "not-the-password"
    with server.client(headers={"X-Real-IP": "203.0.113.7"}) as client:
        answers = [login(client, wrong) for _ in range(5)]
        throttled = login(client, wrong)
        right_but_throttled = login(client)
    assert [a.status_code for a in answers] == [401] * 5
    assert "密码不对" in answers[0].text and "set-cookie" not in answers[0].headers
    assert throttled.status_code == 429 and right_but_throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) == 3600
    assert "set-cookie" not in right_but_throttled.headers
    assert len(logs.find("owner login refused: wrong password ip=203.0.113.7")) == 5
    assert logs.find("owner login throttled ip=203.0.113.7")
    assert not any(wrong in m or PASSWORD in m for m in logs.messages())
    with server.client(headers={"X-Real-IP": "198.51.100.9"}) as other:
        assert login(other).status_code == 303  # another address is not held back
    clock.advance(3600)
    with server.client(headers={"X-Real-IP": "203.0.113.7"}) as client:
        assert login(client).status_code == 303  # the hour has passed


def test_wrong_passwords_count_in_every_instance_sharing_the_store(
    tmp_path: Path, files_dir: Path, serve: ServeFn
) -> None:
    """The throttle counted in each process: two workers (or instances) let an address try
    twice its limit. Two servers on one store now count the same wrong passwords."""
    first = serve_with(tmp_path, serve, server={"trusted_proxies": ["127.0.0.1"]})
    second = serve(first.settings)  # another instance: the same config, the same SQLite file
    headers = {"X-Real-IP": "203.0.113.7"}
    with first.client(headers=headers) as one, second.client(headers=headers) as other:
        tries = [login(one, "guess") for _ in range(3)] + [login(other, "guess") for _ in range(2)]
        assert [t.status_code for t in tries] == [401] * 5  # five: the address's limit
        assert login(one).status_code == 429 and login(other).status_code == 429


def test_wrong_passwords_are_throttled_server_wide(
    tmp_path: Path, files_dir: Path, serve: ServeFn, logs: LogCapture
) -> None:
    server = serve_with(
        tmp_path,
        serve,
        server={"trusted_proxies": ["127.0.0.1"]},
        limits={"wrong_passwords_per_ip_per_hour": 5, "wrong_passwords_per_hour": 6},
    )
    for i in range(6):  # six addresses, one wrong password each: none is over its own limit
        with server.client(headers={"X-Real-IP": f"203.0.113.{i}"}) as client:
            assert login(client, "guess").status_code == 401
    with server.client(headers={"X-Real-IP": "198.51.100.9"}) as client:
        answer = login(client)  # the owner, from a fresh address: the server holds everyone
    assert answer.status_code == 429 and "太多" in answer.text
    assert logs.find("owner login throttled ip=198.51.100.9")


def test_actions_carry_the_sessions_csrf_token(owned: RunningServer) -> None:
    with owned.client() as other:
        assert login(other).status_code == 303
        foreign = csrf_of(other.get("/admin").text)  # another session's token
    with owned.client() as client:
        assert login(client).status_code == 303
        token = csrf_of(client.get("/admin").text)
        assert token != foreign
        revoke = "/admin/links/0123456789abcdef/revoke"
        for form in ({}, {"csrf": ""}, {"csrf": "x" * 27}, {"csrf": foreign}):
            refused = client.post(revoke, data=form)
            assert refused.status_code == 403, form
            assert client.post("/admin/logout", data=form).status_code == 403
        usage = on_store(owned.settings, owned.clock, lambda s: s.usage("0123456789abcdef"))
        assert not usage.revoked
        done = client.post(revoke, data={"csrf": token})
        assert (done.status_code, done.headers["location"]) == (
            303,
            "/admin/links/0123456789abcdef",
        )
        usage = on_store(owned.settings, owned.clock, lambda s: s.usage("0123456789abcdef"))
        assert usage.revoked
        out = client.post("/admin/logout", data={"csrf": token})
        assert (out.status_code, out.headers["location"]) == (303, "/admin/login")
        assert (
            'bot_admin=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
        )
        assert client.get("/admin").headers["location"] == "/admin/login"


def test_a_new_password_ends_every_session(owned: RunningServer) -> None:
    with owned.client() as client:
        assert login(client).status_code == 303
        assert client.get("/admin").status_code == 200
        set_password(owned.settings, owned.clock, "a-brand-new-password")
        assert client.get("/admin").headers["location"] == "/admin/login"
        assert login(client).status_code == 401
        assert login(client, "a-brand-new-password").status_code == 303


def test_with_a_session_unknown_paths_are_404(owned: RunningServer) -> None:
    with owned.client() as client:
        login(client)
        assert client.get("/admin/nothing/here").status_code == 404
        assert client.get("/admin/").status_code == 404


def test_a_store_that_does_not_answer_gives_only_the_login_page(
    tmp_path: Path, files_dir: Path, serve: ServeFn, own_redis: RedisServer, logs: LogCapture
) -> None:
    server = serve_with(tmp_path, serve, state={"url": own_redis.url()})
    with server.client() as client:
        assert login(client).status_code == 303
        own_redis.process.send_signal(signal.SIGSTOP)  # the store keeps the password: no answer
        try:
            page = client.get("/admin")
            form = client.get("/admin/login")
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        assert client.get("/admin").status_code == 200  # back once the store answers
    for answer in (page, form):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
        assert 'name="password"' in answer.text and "n-links" not in answer.text
    assert logs.find("owner page: the store does not answer", level="ERROR")
