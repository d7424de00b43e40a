"""Pick-up codes as a follower meets them: the reply's code line, the wrong-code page's words."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import RunningServer
from tests.helpers.webhook import link_path, reply_text, send

WRONG = "提取码不对或已过期，请回到公众号重新获取"
PICKUP_LINE = re.compile(r"电脑下载：打开 (\S+) 输入提取码 ([A-Z0-9]{6})")


def issue(server: RunningServer, keyword: str = "芝麻开门", **kwargs: Any) -> tuple[str, str]:
    """Send the keyword as WeChat would: the /d/ path and the pick-up code of the reply."""
    text = reply_text(send(server, content=keyword, **kwargs))
    match = PICKUP_LINE.search(text)
    assert match, text
    assert match.group(1) == server.settings.server.public_url + "/k"
    return link_path(text), match.group(2)
