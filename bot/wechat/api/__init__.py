"""WeChat's server API: the shared access token, menus, QR codes, 客服消息, media."""

from bot.wechat.api.client import DEFAULT_BASE_URL, QRCode, WeChatAPI
from bot.wechat.api.token import CachedToken, MemoryTokenCache, TokenCache, TokenSource

__all__ = [
    "DEFAULT_BASE_URL",
    "CachedToken",
    "MemoryTokenCache",
    "QRCode",
    "TokenCache",
    "TokenSource",
    "WeChatAPI",
]
