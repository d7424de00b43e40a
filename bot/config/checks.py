"""Checks across sections, run once the config is read: secrets, templates, files, triggers.

Each raises ConfigError naming the key and the fix; none echoes a secret.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.config.sections import PLACEHOLDERS, Settings
from bot.delivery.modes import MODES
from bot.errors import ConfigError
from bot.keywords.book import fold
from bot.keywords.triggers import INDEXES, MATCH_MODES, TEXT
from bot.wechat.api.media import image_problem

_TOKEN_RE = re.compile(r"^[A-Za-z0-9]{3,32}$")
# config.example.toml's AppID and the like: refused when real pushes would have to match it.
_PLACEHOLDER_APP_ID = re.compile(r"^(wx0+|wx_?x+|wx_?app_?id|appid|change[-_]?me)$", re.I)


def check_secrets(settings: Settings) -> None:
    token = settings.wechat.token
    if token.lower() in PLACEHOLDERS or not _TOKEN_RE.match(token):
        raise ConfigError(
            "wechat.token",
            "is empty, a placeholder, or not 3-32 letters/digits",
            "run `bot init`, or copy the Token from the 公众号 admin page (基本配置 → 服务器配置)",
        )
    if not settings.wechat.app_id:
        raise ConfigError(
            "wechat.app_id", "is empty", "copy the AppID (wx…) from the 公众号 admin page"
        )
    aes = settings.wechat.encoding_aes_key
    if aes and _PLACEHOLDER_APP_ID.match(settings.wechat.app_id):
        raise ConfigError(
            "wechat.app_id",
            f"is the placeholder {settings.wechat.app_id!r} while an EncodingAESKey is set: "
            "every encrypted push would fail with -40005 (appid mismatch)",
            "copy the AppID (wx…) from the 公众号 admin page (基本配置)",
        )
    if aes and not re.fullmatch(r"[A-Za-z0-9]{43}", aes):
        raise ConfigError(
            "wechat.encoding_aes_key",
            "must be exactly 43 letters/digits",
            "copy the EncodingAESKey from the admin page, or leave it empty for plaintext mode",
        )
    keys = settings.links.secret_keys
    if not keys:
        raise ConfigError("links.secret_keys", "is empty", "run `bot init` to generate a key")
    for key in keys:
        if key.lower() in PLACEHOLDERS or "change" in key.lower() or len(key) < 16:
            raise ConfigError(
                "links.secret_keys",
                "holds an empty, short (<16 chars) or placeholder key",
                'generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`',
            )


def check_templates(settings: Settings) -> None:
    link: dict[str, object] = {"url": "u", "filename": "f", "minutes": 10, "keyword": "k"}
    link.update(window="w", code="C", pickup_url="p")
    checks = [
        (f"keywords[{i}].{key}", template, {n: link[n] for n in names})
        for i, rule in enumerate(settings.keywords)
        for key, template, names in rule.templates()
    ]
    checks += [("replies.other", settings.replies.other, {})]
    checks += [
        ("replies.welcome", settings.replies.welcome, {"keywords": "k"}),
        ("replies.help", settings.replies.help, {"keywords": "k"}),
    ]
    for key, template, names in checks:
        try:
            template.format(**names)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                key,
                f"template has an unknown or broken placeholder ({exc})",
                f"use only {', '.join('{' + n + '}' for n in names)}; "
                "write {{ and }} for literal braces",
            ) from None


def check_images(settings: Settings, *, check_files: bool) -> None:
    """Image rules need WeChat's API (the picture is uploaded) and a PNG or JPEG in files.dir."""
    for i, rule in enumerate(settings.keywords):
        if not rule.image:
            continue
        if not settings.wechat.app_secret.get_secret_value():
            raise ConfigError(
                f"keywords[{i}].image",
                "needs [wechat] app_secret: the picture is uploaded to WeChat as temporary media",
                "set wechat.app_secret (or BOT_WECHAT__APP_SECRET), or answer with text or news",
            )
        problem = image_problem(settings.files.dir, rule.image) if check_files else None
        if problem:
            raise ConfigError(
                f"keywords[{i}].image", problem, "put a PNG or JPEG (at most 10 MB) in files.dir"
            )


def check_catalogue(settings: Settings) -> None:
    _check_unique_triggers(settings)
    mode = MODES[settings.files.delivery]
    if mode.check is not None:
        mode.check(settings)
    if not mode.local_files:
        return  # the mode checks its files itself, at start-up and in `bot check`
    root = settings.files.dir
    if not root.is_dir():
        raise ConfigError("files.dir", f"{root} is not a directory", "create it or fix the path")
    for i, rule in enumerate(settings.keywords):
        for j, name in enumerate(rule.file_list):
            target = (root / name).resolve()
            if target.is_relative_to(root.resolve()) and target.is_file():
                continue
            key = f"keywords[{i}].file" + (f"s[{j}]" if rule.files else "")
            link = _symlink_on_the_way(root, name)
            if link is not None and not target.is_relative_to(root.resolve()):
                raise ConfigError(
                    key,
                    f"{name!r} is a symlink ({link} → {link.readlink()}) leading out of {root}: "
                    "links are only followed inside files.dir",
                    "copy the file into files.dir, or set files.dir to the folder it is in",
                )
            fix = "put the file in files.dir or fix the name"
            raise ConfigError(key, f"{name!r} is not a file inside {root}", fix)


def _symlink_on_the_way(root: Path, name: str) -> Path | None:
    """The first symlink among ``root/name`` and its folders below ``root``, if any."""
    path = root / name
    for step in reversed([path, *path.parents]):
        if step.is_relative_to(root) and step != root and step.is_symlink():
            return step
    return None


def _check_unique_triggers(settings: Settings) -> None:
    seen: dict[tuple[str, str], str] = {}
    for i, rule in enumerate(settings.keywords):
        triggers = [
            (index.field, getattr(rule, index.field))
            for name, index in INDEXES.items()
            if name != TEXT
        ]
        if MATCH_MODES[rule.mode] is None:  # exact: one rule per folded text
            triggers += [("match", fold(alias)) for alias in rule.aliases]
        for kind, value in triggers:
            if value and (kind, value) in seen:
                raise ConfigError(
                    f"keywords[{i}].{kind}", f"{value!r} is listed twice (also {seen[kind, value]})"
                )
            seen[kind, value] = f"keywords[{i}]"
