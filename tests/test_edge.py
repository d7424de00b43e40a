"""Issue #10 seen 1 and 2: forged client addresses and replayed signatures, through the shipped nginx."""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from bot.config import Settings, load_settings
from bot.config.networks import parse_networks
from bot.errors import ConfigError
from bot.web.clientaddr import TrustedProxies
from bot.wechat import build_message_xml, signature
from tests.conftest import TOKEN, WECHAT, RunningServer, free_port, write_config
from tests.helpers.botproc import BotProcess
from tests.helpers.nginx import Nginx, local_conf
from tests.helpers.paths import COMPOSE
from tests.helpers.waiting import wait_for
from tests.helpers.webhook import link_path, reply_text, send

pytestmark = pytest.mark.slow

# In compose, nginx reaches the bot from the edge network; here it connects from 127.0.0.1.
NGINX_HERE = '["127.0.0.1"]'
ATTACKER, VICTIM = "127.0.0.2", "127.0.0.3"  # loopback source addresses: two real clients


def compose_bot_env() -> dict[str, str]:
    """The bot's environment from docker/compose.yaml, its container paths left out."""
    env = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["bot"]["environment"]
    local = {k: str(v) for k, v in env.items()}
    for key in ("BOT_SERVER__HOST", "BOT_FILES__DIR", "BOT_STATE__URL"):
        local.pop(key, None)
    if "BOT_SERVER__TRUSTED_PROXIES" in local:
        local["BOT_SERVER__TRUSTED_PROXIES"] = NGINX_HERE
    return local


def client_from(source: str, url: str) -> httpx.Client:
    """An HTTP client whose connections leave from ``source`` (one of 127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, transport=transport, timeout=10)


@dataclass
class Stack:
    """``bot serve`` as compose runs it (x-accel, compose's environment) behind the shipped nginx."""

    bot: BotProcess
    nginx: Nginx
    url: str
    db: Path

    def access_log(self) -> str:
        return (self.nginx.prefix / "access.log").read_text(encoding="utf-8")

    def ips(self) -> set[str]:
        """Every client address in the audit trail."""
        with sqlite3.connect(self.db) as db:
            return {row[0] for row in db.execute("SELECT ip FROM attempts")}


@pytest.fixture
def stack(tmp_path: Path, files_dir: Path) -> Iterator[Callable[..., Stack]]:
    stack = ExitStack()

    def _start(**limits: int) -> Stack:
        port, nginx_port = free_port(), free_port()
        config = write_config(
            tmp_path,
            server={"public_url": f"http://127.0.0.1:{nginx_port}"},
            limits=limits,
            log={"level": "INFO"},
        )
        bot = BotProcess(config, port, env=compose_bot_env()).wait_ready()
        stack.callback(bot.stop)
        conf = local_conf(
            prefix=tmp_path / "nginx",
            port=nginx_port,
            upstream=f"127.0.0.1:{port}",
            files_dir=files_dir,
        )
        nginx = Nginx(tmp_path / "nginx", conf, [nginx_port]).start()
        stack.callback(nginx.stop)
        return Stack(bot, nginx, f"http://127.0.0.1:{nginx_port}", tmp_path / "state" / "bot.db")

    with stack:
        yield _start


def link_via(url: str, user: str = "o_follower_1", msg_id: str = "5001") -> str:
    """Ask the bot (at ``url``, maybe nginx) for a link as WeChat would; its path."""
    xml = build_message_xml(
        to_user="gh", from_user=user, create_time=_now(), content="芝麻开门", msg_id=msg_id
    )
    params, body = WECHAT.build_request(xml, timestamp=str(_now()), nonce=_nonce(), encrypt=False)
    response = httpx.post(url + "/wechat", params=params, content=body, timeout=10)
    return link_path(reply_text(response))


def _now() -> int:
    return int(time.time())


def _nonce() -> str:
    return secrets.token_hex(5)


# --- seen 1: a client-written X-Forwarded-For --------------------------------------------------


def test_seen1_rotating_forwarded_for_through_nginx_is_still_throttled(
    stack: Callable[..., Stack],
) -> None:
    """Issue #10 seen 1: 200 bad tokens with a rotating X-Forwarded-For got 0 × 429 via nginx."""
    edge = stack(bad_tokens_per_ip_per_minute=10)
    with client_from(ATTACKER, edge.url) as attacker:
        statuses = [
            attacker.get(f"/d/forged{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"})
            for i in range(25)
        ]
    codes = [r.status_code for r in statuses]
    assert codes.count(403) == 10 and codes.count(429) == 15, codes


def test_seen1_claimed_address_does_not_lock_its_owner_out(stack: Callable[..., Stack]) -> None:
    """Issue #10 seen 1: 31 bad tokens claiming someone's address locked them out of valid links."""
    edge = stack(bad_tokens_per_ip_per_minute=10)
    good = link_via(edge.url)
    with client_from(ATTACKER, edge.url) as attacker:
        for i in range(12):
            attacker.get(f"/d/forged{i}", headers={"X-Forwarded-For": VICTIM, "X-Real-IP": VICTIM})
    with client_from(VICTIM, edge.url) as victim:
        assert victim.get(good).status_code == 200
        # Since #9b valid links always download; the victim's own bad-token budget is untouched.
        assert victim.get("/d/typo").status_code == 403


def test_seen1_audit_records_the_real_address(stack: Callable[..., Stack]) -> None:
    """Issue #10 seen 1: `bot audit` recorded a forged address."""
    edge = stack()
    good = link_via(edge.url)
    forged = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"}
    with client_from(ATTACKER, edge.url) as attacker:
        assert attacker.get("/d/forged", headers=forged).status_code == 403
        assert attacker.get(good, headers=forged).status_code == 200
    with client_from(VICTIM, edge.url) as victim:
        assert victim.get(good).status_code == 200
    deadline = time.monotonic() + 10  # audit rows are written just after the answer
    while len(edge.ips()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert edge.ips() == {ATTACKER, VICTIM}
    assert "203.0.113.7" not in edge.bot.text()


def test_seen1_direct_forwarded_for_is_ignored_without_trusted_proxies(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path
) -> None:
    """Issue #10 seen 1, no nginx: with trusted_proxies empty, the header is never believed."""
    server = serve(
        load_settings(write_config(tmp_path, limits={"bad_tokens_per_ip_per_minute": 3}))
    )
    good = link_path(reply_text(send(server, content="芝麻开门")))
    with server.client() as client:
        codes = [
            client.get(f"/d/x{i}", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
            for i in range(5)
        ]
        blocked = client.get("/d/y", headers={"X-Forwarded-For": "192.0.2.1"})
        valid = client.get(good, headers={"X-Forwarded-For": "192.0.2.1"})
    assert codes == [403, 403, 403, 429, 429]
    assert blocked.status_code == 429
    assert valid.status_code == 200  # #9b: only bad tokens are throttled, valid links download


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "real_ip", "client"),
    [
        pytest.param(
            [], "198.51.100.1", ["203.0.113.7"], None, "198.51.100.1", id="untrusted-peer"
        ),
        pytest.param(["127.0.0.1"], "127.0.0.1", [], None, "127.0.0.1", id="trusted-no-header"),
        pytest.param(
            ["127.0.0.1"], "127.0.0.1", ["203.0.113.7"], None, "203.0.113.7", id="one-hop"
        ),
        pytest.param(
            ["10.0.0.0/8"],
            "10.0.0.2",
            ["6.6.6.6, 198.51.100.4, 10.0.0.9"],
            None,
            "198.51.100.4",
            id="read-from-the-right",
        ),
        pytest.param(
            ["10.0.0.0/8"],
            "10.0.0.2",
            ["6.6.6.6", "198.51.100.4"],
            None,
            "198.51.100.4",
            id="two-headers",
        ),
        pytest.param(["10.0.0.0/8"], "10.0.0.2", ["10.0.0.5"], None, "10.0.0.5", id="all-proxies"),
        pytest.param(["10.0.0.0/8"], "10.0.0.2", ["junk"], None, "10.0.0.2", id="garbage"),
        pytest.param(["10.0.0.0/8"], "10.0.0.2", [], "198.51.100.9", "198.51.100.9", id="real-ip"),
        pytest.param(["10.0.0.0/8"], "10.0.0.2", [], "junk", "10.0.0.2", id="bad-real-ip"),
        pytest.param(
            ["10.0.0.0/8"], "10.0.0.2", ["198.51.100.4:5555"], None, "198.51.100.4", id="with-port"
        ),
        pytest.param(["::1"], "::1", ["[2001:db8::1]:443"], None, "2001:db8::1", id="ipv6"),
    ],
)
def test_client_address_table(
    trusted: list[str], peer: str, forwarded: list[str], real_ip: str | None, client: str
) -> None:
    assert TrustedProxies(parse_networks(trusted)).client(peer, forwarded, real_ip) == client


def test_trusted_proxies_config_names_the_bad_entry(tmp_path: Path, files_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.trusted_proxies.*'nginx'"):
        load_settings(write_config(tmp_path, server={"trusted_proxies": ["nginx"]}))


# --- seen 2: a logged signature signs any body -------------------------------------------------


def test_seen2_nginx_logs_the_webhook_without_its_query(stack: Callable[..., Stack]) -> None:
    """Issue #10 seen 2: nginx's access log held /wechat?signature=…&timestamp=…&nonce=… in full."""
    edge = stack()
    link_via(edge.url)
    log = edge.access_log()
    assert '"POST /wechat?<query>"' in log
    assert "signature=" not in log and "nonce=" not in log and "timestamp=" not in log


def test_nginx_logs_no_pickup_code(stack: Callable[..., Stack]) -> None:
    """#10 x #14: a pick-up code opens its link until it expires, like a token: nginx's access
    log keeps neither /k/<code> nor /k?code=<code>."""
    edge = stack()
    with httpx.Client(base_url=edge.url, timeout=10) as client:
        client.get("/k/K7QX2M")
        client.get("/k", params={"code": "K7QX2N"})

    def both_lines() -> str:
        """nginx writes a request's line after its response has gone out."""
        log = edge.access_log()
        return log if log.count('"GET /k') >= 2 else ""

    log = wait_for(both_lines) or edge.access_log()
    assert '"GET /k/<code>"' in log and '"GET /k?<query>"' in log, log
    assert "K7QX2" not in log, log


def test_seen2_logged_signature_cannot_sign_another_body(stack: Callable[..., Stack]) -> None:
    """Issue #10 seen 2: two forged followers got links from a logged line 14 s old."""
    edge = stack()
    now = _now()
    xml = build_message_xml(
        to_user="gh", from_user="o_real", create_time=now, content="芝麻开门", msg_id="7001"
    )
    query, body = WECHAT.build_request(xml, timestamp=str(now), nonce=_nonce(), encrypt=False)
    first = httpx.post(edge.url + "/wechat", params=query, content=body, timeout=10)
    retry = httpx.post(edge.url + "/wechat", params=query, content=body, timeout=10)
    assert first.status_code == 200 and retry.content == first.content  # WeChat's retry: dedup
    for forger in ("o_forged_1", "o_forged_2"):
        forged = build_message_xml(
            to_user="gh", from_user=forger, create_time=now, content="芝麻开门", msg_id="666"
        )
        answer = httpx.post(edge.url + "/wechat", params=query, content=forged.encode(), timeout=10)
        assert answer.status_code == 403, answer.text
    assert edge.bot.text().count("replay") >= 2
    assert "o_forged" not in edge.bot.text().split("replay")[0]  # no link was issued to them


def test_seen2_replay_memory_is_shared_across_instances(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, redis_url: str
) -> None:
    """Issue #10 seen 2: the replay table is shared (two instances on one Redis)."""
    settings = load_settings(write_config(tmp_path, state={"url": redis_url}))
    one, two = serve(settings), serve(settings)
    now = int(one.clock())
    xml = build_message_xml(
        to_user="gh", from_user="o_real", create_time=now, content="芝麻开门", msg_id="8001"
    )
    query, body = WECHAT.build_request(xml, timestamp=str(now), nonce=_nonce(), encrypt=False)
    first = httpx.post(one.url + "/wechat", params=query, content=body)
    assert first.status_code == 200
    forged = xml.replace("o_real", "o_forged").encode()
    assert httpx.post(two.url + "/wechat", params=query, content=forged).status_code == 403
    again = httpx.post(two.url + "/wechat", params=query, content=body)  # WeChat's retry
    assert again.status_code == 200
    assert re.findall(r"/d/[^\s\]]+", again.text) == re.findall(r"/d/[^\s\]]+", first.text) != []


def test_seen2_echo_replay_with_another_echostr_is_refused(
    server: RunningServer,
) -> None:
    """Issue #10 seen 2 (GET): a logged verification query cannot answer another echostr."""
    now, nonce = str(int(server.clock())), _nonce()
    query = {"timestamp": now, "nonce": nonce, "signature": signature(TOKEN, now, nonce)}
    with server.client() as client:
        assert client.get("/wechat", params={**query, "echostr": "e1"}).text == "e1"
        assert client.get("/wechat", params={**query, "echostr": "e1"}).text == "e1"
        assert client.get("/wechat", params={**query, "echostr": "e2"}).status_code == 403
