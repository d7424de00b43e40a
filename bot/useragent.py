"""Who is asking for a link: WeChat's in-app browser, a link-preview bot, or a browser (pure)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

LandingMode = Literal["wechat", "always"]


class Agent(Enum):
    """The kinds of client the download route tells apart."""

    WECHAT = "wechat"  # WeChat's or WeCom's in-app browser: downloads fail there
    PREVIEW = "preview"  # a chat app or mail scanner fetching a preview: must not consume a link
    BROWSER = "browser"  # anything else, mini programs included


# Chat apps, social networks and mail scanners that fetch a link to build a preview card.
# Matched as case-insensitive substrings; no bare "bot" (phone models such as "CUBOT" carry it).
PREVIEW_MARKERS = (
    "telegrambot",
    "slackbot",
    "slack-imgproxy",
    "whatsapp",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "twitterbot",
    "discordbot",
    "skypeuripreview",
    "microsoftpreview",
    "bingpreview",
    "ms-office",
    "microsoft office",
    "linkedinbot",
    "line-poker",
    "pinterestbot",
    "redditbot",
    "mattermost",
    "iframely",
    "embedly",
    "vkshare",
    "applebot",
    "googlebot",
    "google-pagerenderer",
    "bytespider",
)
_PREVIEW_RE = re.compile("|".join(re.escape(m) for m in PREVIEW_MARKERS), re.IGNORECASE)
_WECHAT_RE = re.compile(r"micromessenger|wxwork", re.IGNORECASE)
_MINI_PROGRAM_RE = re.compile(r"miniprogram", re.IGNORECASE)


def classify(user_agent: str) -> Agent:
    """The kind of client a User-Agent header names."""
    if _PREVIEW_RE.search(user_agent):
        return Agent.PREVIEW
    if _WECHAT_RE.search(user_agent) and not _MINI_PROGRAM_RE.search(user_agent):
        return Agent.WECHAT
    return Agent.BROWSER


def wants_landing(agent: Agent, mode: LandingMode, *, download_asked: bool) -> bool:
    """True when the landing page, not the file, answers this client.

    WeChat's browser always gets the guide (a download there fails anyway). Preview bots get
    the page for the link as sent (they must never spend a use-limited link); so does every
    browser in "always" mode. The page's button asks again with ``?dl=1``, which a bot never
    sees in a chat message.
    """
    if agent is Agent.WECHAT:
        return True
    if download_asked:
        return False
    return agent is Agent.PREVIEW or mode == "always"
