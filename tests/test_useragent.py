"""User-Agent classification and the landing decision (pure, table-driven)."""

from __future__ import annotations

import pytest

from bot.web.useragent import Agent, LandingMode, classify, wants_landing
from tests.helpers.agents import (
    ANDROID_CHROME,
    ANDROID_WECHAT,
    CUBOT_PHONE,
    IPHONE_SAFARI,
    IPHONE_WECHAT,
    MAC_MINI_PROGRAM,
    MAC_WECHAT,
    MINI_PROGRAM,
    WECOM,
    WECOM_DESKTOP,
    WINDOWS_WECHAT,
)


@pytest.mark.parametrize(
    ("user_agent", "agent"),
    [
        pytest.param(IPHONE_WECHAT, Agent.WECHAT, id="wechat-iphone"),
        pytest.param(ANDROID_WECHAT, Agent.WECHAT, id="wechat-android"),
        pytest.param(WECOM, Agent.WECHAT, id="wecom-iphone"),
        pytest.param(WECOM_DESKTOP, Agent.DESKTOP, id="wecom-windows"),
        pytest.param(WINDOWS_WECHAT, Agent.DESKTOP, id="wechat-windows"),
        pytest.param(MAC_WECHAT, Agent.DESKTOP, id="wechat-mac"),
        pytest.param(MAC_MINI_PROGRAM, Agent.BROWSER, id="mini-program-on-mac"),
        pytest.param(IPHONE_WECHAT.lower(), Agent.WECHAT, id="wechat-any-case"),
        pytest.param(MINI_PROGRAM, Agent.BROWSER, id="mini-program-is-not-wechat-browser"),
        pytest.param(ANDROID_CHROME, Agent.BROWSER, id="android-chrome"),
        pytest.param(IPHONE_SAFARI, Agent.BROWSER, id="iphone-safari"),
        pytest.param(CUBOT_PHONE, Agent.BROWSER, id="cubot-phone-is-not-a-bot"),
        pytest.param("curl/8.5.0", Agent.BROWSER, id="curl"),
        pytest.param("Wget/1.21.3", Agent.BROWSER, id="wget"),
        pytest.param("", Agent.BROWSER, id="empty"),
        pytest.param("TelegramBot (like TwitterBot)", Agent.PREVIEW, id="telegram"),
        pytest.param(
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            Agent.PREVIEW,
            id="slack",
        ),
        pytest.param(
            "Slack-ImgProxy (+https://api.slack.com/robots)", Agent.PREVIEW, id="slack-img"
        ),
        pytest.param("WhatsApp/2.23.20.0 A", Agent.PREVIEW, id="whatsapp"),
        pytest.param(
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            Agent.PREVIEW,
            id="facebook",
        ),
        pytest.param(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
            Agent.PREVIEW,
            id="imessage",
        ),
        pytest.param("Twitterbot/1.0", Agent.PREVIEW, id="twitter"),
        pytest.param(
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            Agent.PREVIEW,
            id="discord",
        ),
        pytest.param(
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
            Agent.PREVIEW,
            id="skype-teams",
        ),
        pytest.param(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36 Edg/112.0.1722.48 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview",
            Agent.PREVIEW,
            id="microsoft-preview",
        ),
        pytest.param(
            "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b",
            Agent.PREVIEW,
            id="bing-preview-outlook",
        ),
        pytest.param(
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)",
            Agent.PREVIEW,
            id="outlook-desktop-fetch",
        ),
        pytest.param("LinkedInBot/1.0 (compatible; Mozilla/5.0)", Agent.PREVIEW, id="linkedin"),
        pytest.param(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Agent.PREVIEW,
            id="googlebot",
        ),
        pytest.param(
            "facebookexternalhit/1.1;line-poker/1.0 MicroMessenger",
            Agent.PREVIEW,
            id="preview-wins-over-wechat-marker",
        ),
    ],
)
def test_classify(user_agent: str, agent: Agent) -> None:
    assert classify(user_agent) is agent


@pytest.mark.parametrize(
    ("agent", "mode", "download_asked", "landing"),
    [
        pytest.param(Agent.WECHAT, "wechat", False, True, id="wechat-gets-guide"),
        pytest.param(Agent.WECHAT, "wechat", True, True, id="wechat-gets-guide-even-for-dl"),
        pytest.param(Agent.WECHAT, "always", True, True, id="wechat-always-mode-dl"),
        pytest.param(Agent.DESKTOP, "wechat", False, True, id="desktop-wechat-gets-its-page"),
        pytest.param(Agent.DESKTOP, "wechat", True, False, id="desktop-wechat-dl-gets-file"),
        pytest.param(Agent.DESKTOP, "always", True, False, id="desktop-always-mode-dl-file"),
        pytest.param(Agent.PREVIEW, "wechat", False, True, id="preview-never-spends-link"),
        pytest.param(Agent.PREVIEW, "always", False, True, id="preview-always-mode"),
        pytest.param(Agent.PREVIEW, "wechat", True, False, id="preview-dl-gets-file"),
        pytest.param(Agent.BROWSER, "wechat", False, False, id="browser-gets-file"),
        pytest.param(Agent.BROWSER, "always", False, True, id="browser-always-mode-page"),
        pytest.param(Agent.BROWSER, "always", True, False, id="browser-always-mode-dl-file"),
    ],
)
def test_wants_landing(
    agent: Agent, mode: LandingMode, download_asked: bool, landing: bool
) -> None:
    assert wants_landing(agent, mode, download_asked=download_asked) is landing
