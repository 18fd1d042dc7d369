"""Tokens, the bearer header, TLS files checked at start-up, loopback addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthqa.server.grpc_api.security import (
    BearerTokens,
    SecurityConfigError,
    ServerTls,
    TlsFiles,
    bearer_token,
    is_loopback,
)

from ...e2e.certs import Authority


def test_tokens_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops team\nalpha\n\n  beta  \n")
    tokens = BearerTokens(path)
    assert tokens.accepts("alpha") and tokens.accepts("beta")
    for wrong in ("", "alph", "alphaa", "# ops team", "ALPHA"):
        assert not tokens.accepts(wrong)


def test_reload_takes_new_tokens_and_a_bad_file_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("old\n")
    tokens = BearerTokens(path)
    path.write_text("new\n")
    tokens.reload()
    assert tokens.accepts("new") and not tokens.accepts("old")
    path.write_text("# nothing left\n")
    with pytest.raises(SecurityConfigError, match="holds no token"):
        tokens.reload()
    assert tokens.accepts("new")


def test_a_missing_tokens_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SecurityConfigError, match="cannot read"):
        BearerTokens(tmp_path / "absent")


@pytest.mark.parametrize(("metadata", "token"), [
    ([("authorization", "Bearer abc")], "abc"),
    ([("Authorization", "bearer  abc ")], "abc"),
    ([("authorization", "Basic abc")], None),
    ([("authorization", "Bearer ")], None),
    ([("x-token", "abc")], None),
    (None, None),
])
def test_bearer_header(metadata: list[tuple[str, str]] | None, token: str | None) -> None:
    assert bearer_token(metadata) == token


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example.com", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_key_that_is_not_the_certificates_is_refused_at_start(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "ca")
    first = authority.issue("one", "one", server=True)
    second = authority.issue("two", "two", server=True)
    assert ServerTls(TlsFiles(first.cert, first.key, authority.bundle.cert)).mutual
    with pytest.raises(SecurityConfigError, match="cannot use"):
        ServerTls(TlsFiles(first.cert, second.key))
    with pytest.raises(SecurityConfigError, match="cannot use"):
        ServerTls(TlsFiles(first.cert, first.key, tmp_path / "no-ca.pem"))
