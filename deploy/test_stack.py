"""`make test-deploy`: docker/Dockerfile's image in docker/compose.yaml under podman, via nginx.

Issue #10 Deliver 7. Traffic goes only to the 127.0.0.1 port nginx publishes, except where a
check must reach one replica itself (`podman exec`). The forged-address check runs last: once it
works, it locks its client address out for a minute.
"""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import quote

import httpx

from bot.links import LinkSigner
from bot.wechat import build_message_xml, parse_message
from deploy.conftest import BAD_TOKENS_PER_MINUTE, DEDUP, DEDUP_NAME, LIMITED
from deploy.stack import Stack, run
from tests.conftest import DEMO_NAME, SECRET, WECHAT
from tests.helpers.webhook import link_path

FORGED = "203.0.113.7"
CONFIG = "/config/config.toml"


def simulate(stack: Stack, text: str, user: str) -> str:
    """`bot simulate TEXT` from the host against nginx's port; the link path in the reply."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "simulate", text, "--user", user,
         "--config", str(stack.config), "--url", f"{stack.url}/wechat"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return link_path(done.stdout)


def link_id(path: str) -> str:
    """The link id a link path's token carries, as `bot audit` takes it."""
    signer = LinkSigner([SECRET], 600, files=[DEMO_NAME])
    return signer.verify(path.removeprefix("/d/")).link_id


def stats_settled(stack: Stack) -> str:
    """`bot stats` once two reads a second apart agree (download rows land after the answer)."""
    last = stack.bot("stats", "--config", CONFIG)
    for _ in range(30):
        time.sleep(1)
        now = stack.bot("stats", "--config", CONFIG)
        if now == last:
            return now
        last = now
    raise AssertionError(f"bot stats kept changing: {last}")


def signed_push(text: str, user: str, msg_id: str) -> tuple[dict[str, str], bytes]:
    """WeChat's query parameters and (encrypted) body for one text message."""
    now = int(time.time())
    xml = build_message_xml(
        to_user="gh_account", from_user=user, create_time=now, msg_type="text",
        content=text, event="", msg_id=msg_id,
    )  # fmt: skip
    return WECHAT.build_request(xml, timestamp=str(now), nonce="dedup", encrypt=True)


def reply_of(raw: bytes) -> str:
    return parse_message(WECHAT.read_reply(raw)).content


def test_healthz(stack: Stack) -> None:
    """Deliver 7: /healthz answers 200 through nginx, with redis behind it."""
    response = httpx.get(f"{stack.url}/healthz", timeout=10)
    assert response.status_code == 200, response.text


def test_simulate_link_download_with_chinese_name_and_range(stack: Stack) -> None:
    """Deliver 7: `bot simulate` -> link -> download: the bytes, the Chinese filename, Range."""
    path = simulate(stack, "芝麻开门", "o_deploy_download")
    expected = (stack.files / DEMO_NAME).read_bytes()
    whole = httpx.get(f"{stack.url}{path}", timeout=30)
    assert whole.status_code == 200, whole.text
    assert whole.content == expected
    disposition = whole.headers["content-disposition"]
    assert f"filename*=UTF-8''{quote(DEMO_NAME)}" in disposition
    assert whole.headers["cache-control"] == "private, no-store"
    part = httpx.get(f"{stack.url}{path}", headers={"Range": "bytes=3-12"}, timeout=30)
    assert part.status_code == 206, part.text
    assert part.content == expected[3:13]
    assert part.headers["content-range"] == f"bytes 3-12/{len(expected)}"


def test_forged_token_gets_the_403_page(stack: Stack) -> None:
    """Deliver 7: a tampered token is refused with the bot's 403 page, through nginx."""
    path = simulate(stack, "芝麻开门", "o_deploy_forger")
    forged = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    response = httpx.get(f"{stack.url}{forged}", timeout=30)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>" in response.text


def settled_status(stack: Stack, path: str) -> int:
    """The link's answer once nginx has reported the last transfer (its post_action follows the
    last byte by a moment; until then the link is held: 503 with Retry-After)."""
    deadline = time.monotonic() + 30
    while (status := httpx.get(f"{stack.url}{path}", timeout=30).status_code) == 503:
        assert time.monotonic() < deadline, "the transfer was never reported"
        time.sleep(0.1)
    return status


def test_counts_survive_a_redis_restart(stack: Stack) -> None:
    """Deliver 7: a used-up one-download link is still used up after redis restarts (AOF)."""
    path = simulate(stack, LIMITED, "o_deploy_limited")
    first = httpx.get(f"{stack.url}{path}", timeout=30)
    assert first.status_code == 200, first.text
    assert settled_status(stack, path) == 410
    before = stats_settled(stack)
    run(["podman", "restart", "--time", "10", stack.container("redis")], timeout=120)
    stack.wait_healthy(timeout=120)
    again = httpx.get(f"{stack.url}{path}", timeout=30)
    assert again.status_code == 410, again.text
    assert stats_settled(stack) == before


def test_two_replicas_share_dedup(stack: Stack) -> None:
    """Deliver 7: one MsgId sent to both replicas (directly and through nginx) gives one link."""
    params, body = signed_push(DEDUP, "o_deploy_dedup", str(time.time_ns() % 10**15))
    links = set()
    for _ in range(4):
        answer = httpx.post(f"{stack.url}/wechat", params=params, content=body, timeout=30)
        assert answer.status_code == 200, answer.text
        links.add(link_path(reply_of(answer.content)))
    query = str(httpx.QueryParams(params))
    script = (
        "import sys, urllib.request as u\n"
        f"q = u.Request('http://127.0.0.1:8000/wechat?{query}', data=sys.stdin.buffer.read())\n"
        "r = u.urlopen(q, timeout=10)\n"
        "sys.stdout.write(r.read().decode())\n"
    )
    for replica in stack.replicas():
        answer = run(["podman", "exec", "-i", replica, "python", "-c", script], stdin=body.decode())
        links.add(link_path(reply_of(answer.encode())))
    assert len(links) == 1, links
    issued = [
        line
        for replica in stack.replicas()
        for line in stack.logs(replica).splitlines()
        if "link issued" in line and f"file={DEDUP_NAME!r}" in line
    ]
    assert len(issued) == 1, issued
    stats = stack.bot("stats", "--config", CONFIG)
    row = next(line for line in stats.splitlines() if line.startswith(DEDUP_NAME))
    assert row[len(DEDUP_NAME) :].split()[0] == "1", stats


def test_spoofed_forwarded_for_is_ignored(stack: Stack) -> None:
    """Deliver 7 (seen 1, via the shipped nginx): a client-written X-Forwarded-For changes nothing.

    Checks #10's trusted proxies: only nginx, on the edge network, may name the client.
    """
    path = simulate(stack, "芝麻开门", "o_deploy_spoof")
    served = httpx.get(f"{stack.url}{path}", headers={"X-Forwarded-For": FORGED}, timeout=30)
    assert served.status_code == 200
    audit = stack.bot("audit", link_id(path), "--config", CONFIG)
    for _ in range(20):  # the download's row lands just after its answer
        if " served " in audit:
            break
        time.sleep(0.5)
        audit = stack.bot("audit", link_id(path), "--config", CONFIG)
    assert " served " in audit and FORGED not in audit, audit
    # ...and nginx is trusted to name the client (the edge network has its pinned subnet): the
    # audit shows the address nginx saw, not nginx's own.
    nginx = stack.addresses(stack.container("nginx"))
    assert nginx and not nginx & set(audit.split()), (nginx, audit)
    # Bad tokens under ever-changing forged addresses still count against the real one: every
    # worker of every replica keeps its own count, so enough to fill them all, and some more.
    refused = 0
    processes = 2 * 2  # replicas x `--workers 2` in the compose command
    for n in range(processes * BAD_TOKENS_PER_MINUTE * 3):
        spoof = {"X-Forwarded-For": f"198.51.100.{n % 250 + 1}"}
        response = httpx.get(f"{stack.url}/d/not-a-token-{n}", headers=spoof, timeout=30)
        refused += response.status_code == 429
    assert refused > 0, "rotating X-Forwarded-For escaped the bad-token limit"
