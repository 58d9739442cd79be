"""The control port's token: where it is found, how it is made, how it is checked.

Every test runs with ``XDG_CONFIG_HOME`` in its own temporary directory and
without ``ARROWLOOP_TOKEN``/``ARROWLOOP_TOKEN_FILE``, so the real home
directory is never read or written.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import AuthenticationError
from arrowloop.server import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    Token,
    check_token,
    default_token_file,
    load_token,
    server_token,
)
from arrowloop.server._auth import MAX_TOKEN, MIN_TOKEN
from tests.profiles import examples

GOOD = "s3cr3t-t0ken-of-some-length"
OTHER = "another-token-of-some-length"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG config directory, and no token in the environment."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(TOKEN_FILE_ENV, raising=False)
    return home


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    path.chmod(0o600)  # token files must be private
    return path


# -- where the token comes from ------------------------------------------------------


def test_default_token_file_is_under_xdg_config_home(config_home: Path) -> None:
    """Without ARROWLOOP_TOKEN_FILE the token file is $XDG_CONFIG_HOME/arrowloop/token."""
    assert default_token_file() == config_home / "arrowloop" / "token"


def test_default_token_file_falls_back_to_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without XDG_CONFIG_HOME (or with it empty) the file is ~/.config/arrowloop/token."""
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    assert default_token_file() == tmp_path / "home" / ".config" / "arrowloop" / "token"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_token_file() == tmp_path / "home" / ".config" / "arrowloop" / "token"


def test_token_file_env_names_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARROWLOOP_TOKEN_FILE replaces the default path (an empty value is ignored)."""
    named = tmp_path / "elsewhere" / "tok"
    monkeypatch.setenv(TOKEN_FILE_ENV, str(named))
    assert default_token_file() == named
    monkeypatch.setenv(TOKEN_FILE_ENV, "")
    assert default_token_file() == tmp_path / "config" / "arrowloop" / "token"


def test_no_token_anywhere_is_none() -> None:
    """With no file and no environment variable, a client has no token."""
    assert load_token() is None
    assert load_token(Path("/nonexistent/arrowloop/token")) is None


def test_explicit_file_wins_over_everything(
    tmp_path: Path, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit token file is used even when the environment and default file have one."""
    explicit = _write(tmp_path / "explicit", f"  {GOOD}\n")
    _write(config_home / "arrowloop" / "token", OTHER)
    monkeypatch.setenv(TOKEN_ENV, OTHER)
    monkeypatch.setenv(TOKEN_FILE_ENV, str(_write(tmp_path / "named", OTHER)))
    assert load_token(explicit) == Token(GOOD, str(explicit))


def test_explicit_file_that_is_missing_is_not_replaced_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named token file that does not exist gives no token, not the environment's."""
    monkeypatch.setenv(TOKEN_ENV, OTHER)
    assert load_token(tmp_path / "missing") is None


def test_environment_token_wins_over_files(
    tmp_path: Path, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARROWLOOP_TOKEN is used before ARROWLOOP_TOKEN_FILE and the default file."""
    _write(config_home / "arrowloop" / "token", OTHER)
    monkeypatch.setenv(TOKEN_FILE_ENV, str(_write(tmp_path / "named", OTHER)))
    monkeypatch.setenv(TOKEN_ENV, f"{GOOD}\n")
    token = load_token()
    assert token == Token(GOOD, "$ARROWLOOP_TOKEN")
    assert token is not None
    assert not token.generated


def test_empty_environment_token_is_ignored(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty ARROWLOOP_TOKEN is as good as none: the default file is read."""
    path = _write(config_home / "arrowloop" / "token", GOOD)
    monkeypatch.setenv(TOKEN_ENV, "")
    assert load_token() == Token(GOOD, str(path))


def test_token_file_env_wins_over_the_xdg_file(
    tmp_path: Path, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARROWLOOP_TOKEN_FILE is read instead of $XDG_CONFIG_HOME/arrowloop/token."""
    _write(config_home / "arrowloop" / "token", OTHER)
    named = _write(tmp_path / "named", f"{GOOD}\r\n")
    monkeypatch.setenv(TOKEN_FILE_ENV, str(named))
    assert load_token() == Token(GOOD, str(named))


def test_token_repr_never_shows_the_value() -> None:
    """A token's repr shows its source, never the secret."""
    shown = repr(Token(GOOD, "/some/file"))
    assert GOOD not in shown
    assert "/some/file" in shown


# -- bad tokens are refused ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\n",
        "short",
        "x" * (MIN_TOKEN - 1),
        "x" * (MAX_TOKEN + 1),
        "has a space in it somewhere",
        "tab\tseparated-token-value",
        "two-lines-of-token\nsecond-line-of-it",
        "\ufeffbyte-order-mark-token",
    ],
)
def test_bad_token_file_is_refused(tmp_path: Path, content: str) -> None:
    """A token file whose content is not a usable token raises AuthenticationError."""
    path = _write(tmp_path / "token", content)
    with pytest.raises(AuthenticationError, match="is not usable") as info:
        load_token(path)
    assert str(path) in str(info.value)
    assert f"expected {MIN_TOKEN} to {MAX_TOKEN} printable characters" in str(info.value)


@pytest.mark.parametrize("content", ["x" * MIN_TOKEN, "y" * MAX_TOKEN, f"\n\t {GOOD} \r\n\n"])
def test_tokens_at_the_limits_are_accepted(tmp_path: Path, content: str) -> None:
    """Tokens of the shortest and longest lengths, and surrounding whitespace, are fine."""
    path = _write(tmp_path / "token", content)
    assert load_token(path) == Token(content.strip(), str(path))


def test_bad_environment_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unusable ARROWLOOP_TOKEN is refused, naming the variable, never the value."""
    monkeypatch.setenv(TOKEN_ENV, "tiny")
    with pytest.raises(AuthenticationError, match=r"the token from \$ARROWLOOP_TOKEN") as info:
        load_token()
    assert "tiny" not in str(info.value)


def test_unreadable_token_file_is_refused(tmp_path: Path) -> None:
    """A token path that is a directory is refused: AuthenticationError saying so."""
    with pytest.raises(AuthenticationError, match="not a regular file"):
        load_token(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602])
def test_token_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A token file group or world readable or writable is refused, naming the fix."""
    path = _write(tmp_path / "token", "t" * 30)
    path.chmod(mode)
    with pytest.raises(AuthenticationError, match=re.escape(f"chmod 600 {path}")):
        load_token(path)


def test_token_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """A symbolic link as token file is refused, even to a private file."""
    real = _write(tmp_path / "real", "t" * 30)
    link = tmp_path / "token"
    link.symlink_to(real)
    with pytest.raises(AuthenticationError, match="symbolic link"):
        load_token(link)


def test_token_file_that_is_a_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe as token file is refused at once (no read that waits for a writer)."""
    fifo = tmp_path / "token"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(AuthenticationError, match="not a regular file"):
        load_token(fifo)


def test_token_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token file owned by someone else is refused (seen as another uid)."""
    path = _write(tmp_path / "token", "t" * 30)
    monkeypatch.setattr(os, "geteuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(AuthenticationError, match="owned by uid"):
        load_token(path)


def test_token_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """A token file of bytes that are not UTF-8 is a bad token file: AuthenticationError."""
    path = _write(tmp_path / "token", b"\xff\xfe" + b"t" * 30)
    with pytest.raises(AuthenticationError, match=re.escape(str(path))):
        load_token(path)


def test_over_long_token_after_leading_whitespace_is_refused(tmp_path: Path) -> None:
    """An over-long token is refused even when blank lines come before it."""
    path = _write(tmp_path / "token", "\n\n\n" + "z" * (MAX_TOKEN + 1) + "\n")
    with pytest.raises(AuthenticationError, match="is not usable"):
        load_token(path)


def test_huge_token_file_is_refused(tmp_path: Path) -> None:
    """A token file far larger than any token is refused, naming the file."""
    path = _write(tmp_path / "token", "t" * 100_000)
    with pytest.raises(AuthenticationError, match=re.escape(str(path))):
        load_token(path)


# -- the server's token --------------------------------------------------------------


def test_server_generates_a_private_token_on_first_start(config_home: Path) -> None:
    """No token anywhere: one is generated, saved with mode 0600, and marked generated."""
    token = server_token()
    path = config_home / "arrowloop" / "token"
    assert token.generated
    assert token.source == str(path)
    assert path.read_text(encoding="utf-8") == token.value + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert MIN_TOKEN <= len(token.value) <= MAX_TOKEN
    assert token.value.isprintable()
    assert " " not in token.value


def test_server_reuses_its_token_on_the_next_start(config_home: Path) -> None:
    """The second start reads the saved token instead of making a new one."""
    first = server_token()
    second = server_token()
    assert second == Token(first.value, first.source, generated=False)
    assert load_token() == second  # what the CLI finds


def test_each_new_server_token_is_different(tmp_path: Path) -> None:
    """Generated tokens are random: two fresh files get two different tokens."""
    a = server_token(tmp_path / "a" / "token")
    b = server_token(tmp_path / "b" / "token")
    assert a.generated
    assert b.generated
    assert a.value != b.value


def test_server_writes_an_explicit_token_file(tmp_path: Path, config_home: Path) -> None:
    """A named, missing token file is created (with its directories); the default is untouched."""
    path = tmp_path / "deep" / "er" / "token"
    token = server_token(path)
    assert token.generated
    assert token.source == str(path)
    assert path.read_text(encoding="utf-8").strip() == token.value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (config_home / "arrowloop" / "token").exists()
    assert server_token(path) == Token(token.value, str(path))


def test_server_uses_the_environment_token_without_writing(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ARROWLOOP_TOKEN set the server uses it and writes no file."""
    monkeypatch.setenv(TOKEN_ENV, GOOD)
    assert server_token() == Token(GOOD, "$ARROWLOOP_TOKEN")
    assert not config_home.exists()


def test_server_refuses_a_bad_token_file_and_keeps_it(config_home: Path) -> None:
    """A bad token file stops the server; the file is not replaced by a new token."""
    path = _write(config_home / "arrowloop" / "token", "short\n")
    with pytest.raises(AuthenticationError, match="is not usable"):
        server_token()
    assert path.read_text(encoding="utf-8") == "short\n"


def test_server_token_file_in_the_way_is_refused(tmp_path: Path) -> None:
    """A token path below a regular file cannot be used: AuthenticationError."""
    blocker = _write(tmp_path / "blocker", "not a directory")
    with pytest.raises(AuthenticationError, match="token file"):
        server_token(blocker / "token")


def test_server_does_not_overwrite_a_token_written_meanwhile(tmp_path: Path) -> None:
    """The file is created exclusively: a token found there is read, not replaced."""
    path = _write(tmp_path / "token", GOOD)
    os.chmod(path, 0o600)
    assert server_token(path) == Token(GOOD, str(path))
    assert path.read_text(encoding="utf-8") == GOOD


# -- checking a request's token ------------------------------------------------------


def test_right_token_is_accepted() -> None:
    """The server's own token passes."""
    check_token(GOOD, Token(GOOD, "x"))


@pytest.mark.parametrize("given", [None, "", 0, 123, b"s3cr3t-t0ken-of-some-length", [GOOD]])
def test_missing_token_is_refused(given: object) -> None:
    """No token, an empty one or one that is not a string: refused as missing."""
    with pytest.raises(AuthenticationError, match='the request has no "token"'):
        check_token(given, Token(GOOD, "x"))


def test_string_subclass_is_not_a_token() -> None:
    """Only a real ``str`` is a token (JSON never produces anything else)."""

    class Sly(str):
        __slots__ = ()

    with pytest.raises(AuthenticationError, match='no "token"'):
        check_token(Sly(GOOD), Token(GOOD, "x"))


@pytest.mark.parametrize(
    "given", [OTHER, GOOD[:-1], GOOD + "x", GOOD.upper(), f" {GOOD}", "\udcff" * 20, "é" * 30]
)
def test_wrong_token_is_refused(given: str) -> None:
    """Any other string, including near misses and unencodable ones, is a wrong token."""
    with pytest.raises(AuthenticationError, match="wrong token: the request was refused"):
        check_token(given, Token(GOOD, "x"))


@settings(max_examples=examples(200), derandomize=True, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_only_the_exact_token_passes(given: str) -> None:
    """For any non-empty string, check_token accepts exactly the server's token."""
    expected = Token(GOOD, "x")
    if given == GOOD:
        check_token(given, expected)
    else:
        with pytest.raises(AuthenticationError, match="wrong token"):
            check_token(given, expected)
