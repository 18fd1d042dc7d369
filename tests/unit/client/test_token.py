"""A token gRPC cannot send is refused before any call, naming the character and its place
and never the token (gRPC itself fails every call with a bare INTERNAL "Invalid metadata")."""

from __future__ import annotations

import pytest

from synthqa.client import Credentials
from synthqa.client.cli import TOKEN_VARIABLE, main

from ...e2e.serverproc import free_port

SECRET = "s3cret-token"


@pytest.mark.parametrize(("token", "expected"), [
    (SECRET + "\n", "character 13 of 13 is a newline (the end of a line read with the token "
                    "from a file?)"),
    ("s3\u00e9cret", "character 3 of 7 is U+00E9"),
    ("s3\tcret", "character 3 of 7 is a tab;"),
])
def test_the_library_refuses_the_token_when_credentials_are_made(
    token: str, expected: str
) -> None:
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        Credentials(token=token)
    assert expected in str(caught.value)
    assert "s3" not in str(caught.value)


def nowhere() -> list[str]:
    return ["--target", f"127.0.0.1:{free_port()}", "--timeout", "1"]


def test_the_cli_refuses_a_token_with_a_newline_before_any_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*nowhere(), "--token", SECRET + "\n", "info"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "--token (or $SYNTHQA_TOKEN): the token's character 13 of 13 is a newline" in error
    assert SECRET not in error and "Invalid metadata" not in error

    monkeypatch.setenv(TOKEN_VARIABLE, SECRET + "\r\n")
    with pytest.raises(SystemExit):
        main([*nowhere(), "info"])
    assert "character 13 of 14 is a carriage return" in capsys.readouterr().err


def test_a_printable_token_passes() -> None:
    assert Credentials(token=SECRET).call_metadata() == (("authorization", f"Bearer {SECRET}"),)
