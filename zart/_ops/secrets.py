"""Keeping passwords out of everything zart prints: API bodies, logs, CLI output.

Database URLs are shown with their password masked (``postgresql://app:***@db/app``),
as SQLAlchemy's ``render_as_string(hide_password=True)`` does. ``scrub`` applies the
same masking to any text that may quote a URL (an exception message, a log line),
and :class:`ScrubFilter` does it for every record a logging handler emits.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# scheme://user:password@  (also a bare scheme://:password@); the password ends at the
# last "@" before the host, so passwords containing "@" or ":" are masked whole.
_URL_WITH_PASSWORD = re.compile(
    r"(?P<head>(?:\b[a-zA-Z][a-zA-Z0-9+.\-]*:)?//[^\s:/?#@'\"]*):(?P<password>[^\s'\"]*)@"
    r"(?=[^\s@'\"]*(?:[\s'\"]|$))"
)
# key=value forms of libpq connection strings and URL query strings.
_KEY_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<password>[^\s&;'\"]+)", re.IGNORECASE
)


def scrub(text: str) -> str:
    """``text`` with the password of every URL (and ``password=...`` pair) masked."""
    if "@" not in text and "=" not in text:
        return text
    text = _URL_WITH_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _KEY_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", text)


def mask_url(url: str) -> str:
    """A database URL fit to print: its password (if any) replaced by ``***``.

    Done on the text rather than through SQLAlchemy's parser, which splits
    ``user:p@ss@host`` at the first ``@`` and would print half the password."""
    return scrub(url)


class ScrubFilter(logging.Filter):
    """Masks passwords in a record's message and traceback before a handler emits it.

    Attach it to handlers (``handler.addFilter(ScrubFilter())``): a handler filter sees
    the records of every logger that reaches it, child loggers included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(text)
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def install_log_scrubbing(*loggers: str) -> None:
    """Add a :class:`ScrubFilter` to the handlers of the root logger and of ``loggers``."""
    for name in ("", *loggers):
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                handler.addFilter(ScrubFilter())
