"""Credentials out of every message and log: URLs and GStreamer pipelines made safe to print (stdlib only)."""

from __future__ import annotations

import re

#: query parameters and GStreamer properties whose values are secrets
_SECRET_KEYS = r"(?:pass|password|passwd|pwd|user-pw|proxy-pw|token|access_token|auth|key|apikey|api_key|secret|sig|signature)"
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/+")  # also a mistyped rtsp:/


def _mask_userinfo(url: str) -> str:
    """``url`` (what follows 'scheme://') with a user:password@ part replaced by ***@.

    The credentials end at the last '@' before the host; a password may itself
    hold '@', '/' or ':' (unencoded, as people type them). An '@' that only
    appears in a path ('host/stream@1') is left alone.
    """
    for at in sorted((i for i, ch in enumerate(url) if ch == "@"), reverse=True):
        userinfo = url[:at]
        if ":" in userinfo or "/" not in userinfo:
            return "***@" + url[at + 1:]
    return url


def mask_secrets(text: str) -> str:
    """``text`` (a URL, a GStreamer pipeline) safe to print: URL credentials and secret-looking
    parameters (?password=, user-pw=, token=, ...) replaced by ***."""
    out, pos = [], 0
    for m in _URL_START.finditer(text):
        if m.start() < pos:
            continue
        end = m.end()
        while end < len(text) and text[end] not in " \t\n\"'!":  # a URL in a pipeline ends at a space, quote or '!'
            end += 1
        out += [text[pos:m.end()], _mask_userinfo(text[m.end():end])]
        pos = end
    out.append(text[pos:])
    return mask_params("".join(out))


def mask_params(text: str) -> str:
    return re.sub(rf"(?i)((?:^|[?&;\s]){_SECRET_KEYS}=)(\"[^\"]*\"|'[^']*'|[^&#\s!]*)", r"\1***", text)
