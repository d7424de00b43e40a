"""WeRoBot answering the keyword with a link (a ``@robot.filter``), as a WSGI app for gunicorn.

Configured like bench/peers/seed.py (SEED_* variables); installed only in the bench's venv.
"""

from __future__ import annotations

import os

from werobot import WeRoBot

from bench.peers.seed import serializer

env = os.environ
robot = WeRoBot(token=env["SEED_TOKEN"], SESSION_STORAGE=False)
links = serializer(env["SEED_SECRET"])
public_url, file_name = env["SEED_PUBLIC_URL"], env.get("SEED_FILE", "1KB.bin")


@robot.filter(env["SEED_KEYWORD"])
def link() -> str:
    """The keyword's answer: a signed download link."""
    return f"下载链接（10 分钟内有效）：{public_url}/d/{links.dumps(file_name)}"


app = robot.wsgi
