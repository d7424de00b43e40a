"""One small exception tree; HTTP status codes are chosen only in ``bot.web.errors``."""

from __future__ import annotations

from datetime import datetime

RETRY_AFTER = 30  # seconds a client is told to wait when a store or a bucket does not answer


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """A configuration value is missing or wrong; names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"config '{key}': {problem}" + (f" — {fix}" if fix else ""))


class WeChatError(BotError):
    """A webhook request could not be accepted."""

    code: int = 0

    def __init__(self, reason: str, code: int | None = None) -> None:
        self.reason = reason
        if code is not None:
            self.code = code
        super().__init__(f"{reason} ({self.code})" if self.code else reason)


class SignatureError(WeChatError):
    """Signature, msg_signature or timestamp did not hold (-40001)."""

    code = -40001


class MessageError(WeChatError):
    """The body is not a WeChat message: not XML, no MsgType, broken ciphertext (-4000x)."""

    code = -40002


class LinkError(BotError):
    """A download token cannot be honoured."""


class LinkInvalid(LinkError):
    """Tampered, garbage or foreign token."""


class CodeUnknown(LinkInvalid):
    """A pick-up code that is wrong or expired (counted like a bad token); ``shown`` is masked."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        super().__init__(f"unknown pick-up code {shown}")


class LinkExpired(LinkError):
    """A genuine token past its lifetime."""

    def __init__(
        self, link_id: str, file_key: str, expired_at: datetime, *, keyword: str = ""
    ) -> None:
        self.link_id, self.file_key, self.expired_at = link_id, file_key, expired_at
        self.keyword = keyword  # the keyword that issued the link ("" when unknown)
        super().__init__(f"link {link_id} expired at {expired_at.isoformat()}")


class FileMissing(BotError):
    """A catalogue key whose file is not (or no longer) on disk."""

    def __init__(self, file_key: str, link_id: str = "") -> None:
        self.file_key, self.link_id = file_key, link_id  # the link that asked, when one did
        super().__init__(f"file {file_key!r} is missing")


class LinkRevoked(LinkError):
    """The owner revoked this link (``bot revoke``)."""

    def __init__(self, link_id: str, file_key: str, *, keyword: str = "") -> None:
        self.link_id, self.file_key, self.keyword = link_id, file_key, keyword
        super().__init__(f"link {link_id} was revoked")


class LinkExhausted(LinkError):
    """A use-limited link whose downloads are all taken."""

    def __init__(self, link_id: str, file_key: str, limit: int, *, keyword: str = "") -> None:
        self.link_id, self.file_key, self.limit, self.keyword = link_id, file_key, limit, keyword
        super().__init__(f"link {link_id} has used its {limit} download(s)")


class StoreUnavailable(BotError):
    """The state store did not answer (down, locked, read-only or too slow)."""

    def __init__(self, reason: str, link_id: str = "", file_key: str = "") -> None:
        self.reason, self.link_id, self.file_key = reason, link_id, file_key
        super().__init__(f"state store unavailable: {reason}")


class StaleRequest(SignatureError):
    """A correctly signed callback whose timestamp is too far from our clock (a replay)."""


class PushReplayed(SignatureError):
    """A remembered signature/timestamp/nonce triple arrived with a different body (a replay)."""


class EncryptionRequired(WeChatError):
    """A plaintext callback while ``[wechat] require_encryption`` is on."""


class BodyRefused(BotError):
    """A request body that was not read whole: too large, too slow, or cut off."""


class BodyTooLarge(BodyRefused):
    """More bytes than ``[wechat] max_body_bytes``, declared or sent."""

    def __init__(self, size: int, limit: int, *, declared: bool) -> None:
        self.size, self.limit, self.declared = size, limit, declared
        how = "declared" if declared else "at least"
        super().__init__(f"body too large: {how} {size} bytes, limit {limit}")


class BodyTimeout(BodyRefused):
    """The sender did not finish the body within ``[wechat] body_timeout`` seconds."""

    def __init__(self, received: int, seconds: float) -> None:
        self.received, self.seconds = received, seconds
        super().__init__(f"body not complete after {seconds:g}s ({received} bytes received)")


class BodyIncomplete(BodyRefused):
    """The sender went away before the body was complete."""

    def __init__(self, received: int) -> None:
        self.received = received
        super().__init__(f"client disconnected after {received} bytes of the body")


class TooManyBadTokens(BotError):
    """One address presented too many bad download tokens recently."""

    def __init__(self, ip: str, retry_after: int) -> None:
        self.ip, self.retry_after = ip, retry_after
        super().__init__(f"too many bad tokens from {ip}; retry after {retry_after}s")


class DownloadRefused(BotError):
    """Too many downloads at once; ``retry_after`` seconds is a fair time to try again."""

    def __init__(self, reason: str, retry_after: int, link_id: str = "") -> None:
        self.reason, self.retry_after, self.link_id = reason, retry_after, link_id
        super().__init__(f"{reason}; retry after {retry_after}s")


class ServerBusy(DownloadRefused):
    """The server already serves ``[limits] max_concurrent_downloads`` downloads."""


class LinkBusy(DownloadRefused):
    """This link already has ``[limits] max_concurrent_per_link`` downloads running."""


class LinkHeld(DownloadRefused):
    """A use-limited link whose downloads left are held by leases in flight: a download still
    running, or one whose worker died, until its lease lapses (temporary: 503, not 410)."""

    def __init__(self, link_id: str, file_key: str, retry_after: int, *, keyword: str = "") -> None:
        super().__init__("a transfer in flight holds its downloads left", retry_after, link_id)
        self.file_key, self.keyword = file_key, keyword


class RangeError(BotError):
    """A ``Range`` header the download cannot honour."""


class MalformedRange(RangeError):
    """A ``bytes=`` Range whose syntax is broken (400)."""

    def __init__(self, header: str) -> None:
        self.header = header
        super().__init__(f"malformed Range {header[:100]!r}")


class RangeNotSatisfiable(RangeError):
    """A well-formed Range that asks for no byte of the file (416)."""

    def __init__(self, header: str, size: int, file_key: str = "", link_id: str = "") -> None:
        self.header, self.size, self.file_key, self.link_id = header, size, file_key, link_id
        super().__init__(f"Range {header[:100]!r} is outside the file's {size} bytes")


class TransferAborted(BotError):
    """A download cut off before its last byte: the file changed, or the client stopped reading."""

    def __init__(self, reason: str, file_key: str = "") -> None:
        self.reason, self.file_key = reason, file_key
        super().__init__(f"transfer of {file_key!r} aborted: {reason}")


class ObjectStoreUnavailable(DownloadRefused):
    """The bucket (a delivery mode on object storage: s3, or another `Bucket`) did not answer, or
    refused the bot's key pair."""

    def __init__(
        self, reason: str, retry_after: int, *, file_key: str = "", denied: bool = False
    ) -> None:
        super().__init__(reason, retry_after)
        self.file_key = file_key
        self.denied = denied  # the bucket answered 403: the key pair, not the network
