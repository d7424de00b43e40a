"""The errors of WeChat's server API, each telling the owner what went wrong and the fix."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.errors import BotError

_QUERY_SECRETS = re.compile(r"((?:access_token|secret|appsecret)=)[^&\s\"']*", re.IGNORECASE)
_IP = re.compile(r"invalid ip ([0-9A-Fa-f.:]+)")
ADMIN = "公众号 admin page → 设置与开发 → 基本配置"


def mask(text: str) -> str:
    """``text`` with every ``access_token=…`` (and ``secret=…``) in it replaced by ``…``."""
    return _QUERY_SECRETS.sub(r"\1…", text)


class WeChatAPIError(BotError):
    """WeChat answered a call with an ``errcode``; the message names the problem and the fix."""

    def __init__(self, api: str, errcode: int, errmsg: str, problem: str, fix: str = "") -> None:
        self.api, self.errcode, self.errmsg = api, errcode, mask(errmsg)
        self.problem, self.fix = problem, fix
        text = f"WeChat API {api}: {problem} (errcode {errcode}: {self.errmsg})"
        super().__init__(text + (f" — {fix}" if fix else ""))


class IPNotWhitelisted(WeChatAPIError):
    """40164: this server's address is not in the account's IP whitelist."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        found = _IP.search(errmsg)
        self.ip = found.group(1) if found else ""
        shown = self.ip or "this server's public IP"
        super().__init__(
            api,
            errcode,
            errmsg,
            f"WeChat refused the call from {shown}: it is not in the IP whitelist",
            f"add {shown} to {ADMIN} → IP白名单, then try again",
        )


class BadCredentials(WeChatAPIError):
    """40013 (AppID) or 40125 (AppSecret): the account's credentials are wrong."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        self.field = "app_id" if errcode == 40013 else "app_secret"
        if errcode == 40013:
            problem, fix = "the AppID is not valid", f"copy the AppID (wx…) from {ADMIN}"
            fix += " into [wechat] app_id"
        else:
            problem = "the AppSecret is wrong (or was reset)"
            fix = f"copy the AppSecret (开发者密码) from {ADMIN} into [wechat] app_secret"
            fix += " or BOT_WECHAT__APP_SECRET"
        super().__init__(api, errcode, errmsg, problem, fix)


class AccountLacksAPI(WeChatAPIError):
    """48001: the account type is not allowed this API."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(
            api,
            errcode,
            errmsg,
            f"this account type may not use {api}",
            "menus, 客服消息 and media need a verified (认证) 订阅号 or a 服务号; parameter QR"
            " codes need a verified 服务号 (公众号 admin page → 设置与开发 → 接口权限 lists them)",
        )


class QuotaExceeded(WeChatAPIError):
    """45009: the API's daily call quota is used up."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(
            api,
            errcode,
            errmsg,
            f"the daily quota of {api} is used up",
            "wait for tomorrow's quota, or reset it on the 公众号 admin page (接口权限)",
        )


class WeChatBusy(WeChatAPIError):
    """-1: WeChat's system was busy on every try."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(
            api, errcode, errmsg, "WeChat is busy (system error)", "try again in a minute"
        )


class TokenRejected(WeChatAPIError):
    """40001, 40014, 42001 again after a refresh, or a forced refresh WeChat's limits forbid."""

    def __init__(self, api: str, errcode: int, errmsg: str, fix: str = "") -> None:
        super().__init__(
            api,
            errcode,
            errmsg,
            "WeChat rejected the access token even after a refresh",
            fix or "check that nothing else resets the AppSecret, then try again in a minute",
        )


class NoMenu(WeChatAPIError):
    """46003: the account has no custom menu."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(api, errcode, errmsg, "the account has no menu", "create one first")


class CustomMessageRefused(WeChatAPIError):
    """45015 (the follower's window passed) or 45047 (its quota is used): no 客服消息 now."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        if errcode == 45015:
            problem = "the follower's 客服 window has passed (48 h after a message)"
        else:
            problem = "the 客服 quota for this follower is used up"
        super().__init__(api, errcode, errmsg, problem, "answer when the follower writes again")


class InvalidMedia(WeChatAPIError):
    """40007: WeChat does not know the media_id (expired or never uploaded)."""

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(
            api, errcode, errmsg, "WeChat does not know this media_id", "upload the file again"
        )


class WeChatUnreachable(BotError):
    """The API did not answer (network, timeout, not JSON); the reason never holds the URL."""

    def __init__(self, api: str, reason: str) -> None:
        self.api, self.reason = api, mask(reason)
        super().__init__(f"WeChat API {api} did not answer: {self.reason}")


TOKEN_REJECTED = frozenset({40001, 40014, 42001})
BUSY = -1
_BY_CODE: dict[int, Callable[[str, int, str], WeChatAPIError]] = {
    40164: IPNotWhitelisted,
    40013: BadCredentials,
    40125: BadCredentials,
    48001: AccountLacksAPI,
    45009: QuotaExceeded,
    BUSY: WeChatBusy,
    40001: TokenRejected,
    40014: TokenRejected,
    42001: TokenRejected,
    46003: NoMenu,
    45015: CustomMessageRefused,
    45047: CustomMessageRefused,
    40007: InvalidMedia,
}


def _other(api: str, errcode: int, errmsg: str) -> WeChatAPIError:
    fix = "see WeChat's global error codes (全局返回码) for this errcode"
    return WeChatAPIError(api, errcode, errmsg, "WeChat refused the call", fix)


def error_for(api: str, errcode: int, errmsg: str) -> WeChatAPIError:
    """The exception for WeChat's ``errcode`` on ``api`` (a generic one for codes not named)."""
    return _BY_CODE.get(errcode, _other)(api, errcode, errmsg)


class RequestRefused(BotError):
    """A call refused before it was made: names the field, the limit and the fix."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(f"{field}: {problem}" + (f" — {fix}" if fix else ""))
