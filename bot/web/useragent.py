"""Who is asking for a link: WeChat's in-app browser, a link-preview bot, or a browser (pure)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

LandingMode = Literal["wechat", "always"]


class Agent(Enum):
    """The kinds of client the download route tells apart."""

    WECHAT = "wechat"  # WeChat's or WeCom's in-app browser on a phone: downloads fail there
    DESKTOP = "wechat-desktop"  # WeChat (or WeCom) for Windows / Mac: its own browser window
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
# WeChat for Windows: "WindowsWechat(0x63090a13) XWEB/…"; for Mac: "MacWechat/3.8.7(0x13080712)",
# and Mac builds often carry "WindowsWechat" as well. WeCom for Windows also says WindowsWechat.
_DESKTOP_RE = re.compile(r"windowswechat|macwechat", re.IGNORECASE)


def classify(user_agent: str) -> Agent:
    """The kind of client a User-Agent header names."""
    if _PREVIEW_RE.search(user_agent):
        return Agent.PREVIEW
    if _WECHAT_RE.search(user_agent) and not _MINI_PROGRAM_RE.search(user_agent):
        return Agent.DESKTOP if _DESKTOP_RE.search(user_agent) else Agent.WECHAT
    return Agent.BROWSER


def wants_landing(agent: Agent, mode: LandingMode, *, download_asked: bool) -> bool:
    """True when the landing page, not the file, answers this client.

    WeChat's browser on a phone always gets the guide (a download there fails anyway). WeChat
    for Windows/Mac gets a page with a download button and guidance for that window (whether
    its own browser saves a file depends on the version), and the file for ``?dl=1``. Preview
    bots get the page for the link as sent (they must never spend a use-limited link); so does
    every browser in "always" mode. The page's button asks again with ``?dl=1``, which a bot
    never sees in a chat message.
    """
    if agent is Agent.WECHAT:
        return True
    if agent is Agent.DESKTOP:
        return not download_asked
    if download_asked:
        return False
    return agent is Agent.PREVIEW or mode == "always"
