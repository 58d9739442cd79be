"""The control port's shared secret: where it comes from and how it is checked.

The token is looked up in this order: an explicit token file, the
``ARROWLOOP_TOKEN`` environment variable, then the default token file
(``$XDG_CONFIG_HOME/arrowloop/token``, else ``~/.config/arrowloop/token``).
A server that finds none generates one, writes it to the token file
(readable by its owner only) and prints where (never the token itself); the
CLI finds it there. A token file is read only if it is private: a regular
file (not a link, not a pipe), owned by the user reading it, neither
readable nor writable by group or others, as ssh insists for its keys.
"""

from __future__ import annotations

import errno
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Final

import attrs

from arrowloop.errors import AuthenticationError

__all__ = [
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "Token",
    "default_token_file",
    "load_token",
    "server_token",
    "check_token",
]

#: Environment variable holding the token itself.
TOKEN_ENV: Final = "ARROWLOOP_TOKEN"
#: Environment variable naming the token file (instead of the default path).
TOKEN_FILE_ENV: Final = "ARROWLOOP_TOKEN_FILE"
#: Shortest token accepted, in characters.
MIN_TOKEN: Final = 16
#: Longest token accepted, in characters.
MAX_TOKEN: Final = 1024
#: Largest token file read (the token plus surrounding whitespace).
_MAX_FILE: Final = 64 * 1024


@attrs.frozen
class Token:
    """A token and where it came from (``source`` is shown, the token never)."""

    value: str = attrs.field(repr=False)
    source: str
    generated: bool = False


def default_token_file() -> Path:
    """The token file used when none is named."""
    named = os.environ.get(TOKEN_FILE_ENV)
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "arrowloop" / "token"


def _valid(value: str, source: str) -> str:
    value = value.strip()
    if not MIN_TOKEN <= len(value) <= MAX_TOKEN or not value.isprintable() or " " in value:
        raise AuthenticationError(
            f"the token from {source} is not usable: expected {MIN_TOKEN} to {MAX_TOKEN} "
            "printable characters without spaces"
        )
    return value


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise AuthenticationError(
            f"the token file {path} is not a regular file: replace it with a file "
            "holding the token (or remove it to have the server generate one)"
        )
    me = os.geteuid()
    if st.st_uid != me:
        raise AuthenticationError(
            f"the token file {path} is owned by uid {st.st_uid}, not by you (uid {me}): "
            f"a token others control is no secret; run: chown {me} {path}"
        )
    if st.st_mode & 0o077:
        raise AuthenticationError(
            f"the token file {path} is readable or writable by others "
            f"(mode {stat.S_IMODE(st.st_mode):03o}); run: chmod 600 {path}"
        )


def _read(path: Path) -> str | None:
    # No following a link, and no blocking on a pipe: both are refused below.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AuthenticationError(
                f"the token file {path} is a symbolic link: point the server and the CLI "
                "at the file itself (--token-file), or replace the link with the file"
            ) from None
        raise AuthenticationError(f"cannot read the token file {path}: {exc}") from None
    try:
        try:
            _check_private(path, os.fstat(fd))
        except AuthenticationError:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as f:
            raw = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise AuthenticationError(f"cannot read the token file {path}: {exc}") from None
    if len(raw) > _MAX_FILE:
        raise AuthenticationError(
            f"the token file {path} is larger than {_MAX_FILE} bytes: it holds no token"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationError(f"the token file {path} is not UTF-8 text") from None


def load_token(token_file: Path | None = None) -> Token | None:
    """The token a client should send: from ``token_file``, the environment,
    or the default token file, in that order (``None`` if there is none).

    Raises:
        AuthenticationError: a token file exists but is unreadable or its
            content is not a usable token.
    """
    if token_file is not None:
        raw = _read(token_file)
        return None if raw is None else Token(_valid(raw, str(token_file)), str(token_file))
    env = os.environ.get(TOKEN_ENV)
    if env:
        return Token(_valid(env, f"${TOKEN_ENV}"), f"${TOKEN_ENV}")
    path = default_token_file()
    raw = _read(path)
    return None if raw is None else Token(_valid(raw, str(path)), str(path))


def server_token(token_file: Path | None = None) -> Token:
    """The server's token, generated and saved on first start if there is none.

    Raises:
        AuthenticationError: the token file is unreadable, unwritable or bad.
    """
    found = load_token(token_file)
    if found is not None:
        return found
    path = token_file if token_file is not None else default_token_file()
    value = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never overwrite a token another server wrote meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
    except FileExistsError:
        raced = load_token(path)
        if raced is None:  # pragma: no cover - removed again between the two calls
            raise AuthenticationError(f"the token file {path} vanished while starting") from None
        return raced
    except OSError as exc:
        raise AuthenticationError(f"cannot write the token file {path}: {exc}") from None
    return Token(value, str(path), generated=True)


def check_token(given: object, expected: Token) -> None:
    """Compare in constant time (in the token's length).

    Raises:
        AuthenticationError: ``given`` is missing or wrong.
    """
    if type(given) is not str or not given:
        raise AuthenticationError(
            'the request has no "token": control requests must carry the server\'s token'
        )
    ok = hmac.compare_digest(given.encode("utf-8", "replace"), expected.value.encode("utf-8"))
    if not ok:
        raise AuthenticationError("wrong token: the request was refused and nothing was changed")
