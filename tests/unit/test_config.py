"""Server flags: vLLM's own plus synthqa's, with defaults and limits derived from their
declarations."""

from __future__ import annotations

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.config import Keepalive, parse
from synthqa.server.pipeline.limits import ServiceLimits


def test_every_option_has_a_default_flag() -> None:
    _, settings = parse(["--model", "m", "--default-num-pairs", "2", "--default-seed", "9",
                         "--default-top-p", "0.5"])
    assert settings.defaults == GenerationOptions(num_pairs=2, seed=9, top_p=0.5)
    _, plain = parse(["--model", "m"])
    assert plain.defaults == GenerationOptions()
    assert plain.limits == ServiceLimits()


def test_limits_and_vllm_flags_parse_side_by_side() -> None:
    engine_args, settings = parse(["--model", "m", "--max-num-pairs", "7",
                                   "--max-model-len", "1024", "--port", "6000"])
    assert settings.limits.max_num_pairs == 7 and settings.port == 6000
    assert engine_args.max_model_len == 1024 and engine_args.model == "m"


def test_out_of_range_limits_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--model", "m", "--max-in-flight-chunks", "0"])
    assert "--max-in-flight-chunks must be between 1" in capsys.readouterr().err


def test_keepalive_flags_become_grpc_options() -> None:
    _, settings = parse(["--model", "m", "--keepalive-time", "30", "--keepalive-timeout", "5"])
    assert settings.keepalive == Keepalive(30.0, 5.0, 10.0)
    options = dict(settings.keepalive.grpc_options())
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == 5_000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 10_000
    with pytest.raises(SystemExit):
        parse(["--model", "m", "--keepalive-time", "0"])


@pytest.mark.parametrize(("flags", "message"), [
    (["--tls-cert-file", "c.pem"], "--tls-cert-file and --tls-key-file go together"),
    (["--tls-client-ca-file", "ca.pem"], "--tls-client-ca-file needs --tls-cert-file"),
])
def test_tls_flags_come_in_working_sets(flags: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--model", "m", *flags])
    assert message in capsys.readouterr().err


def test_security_flags_reach_the_settings() -> None:
    _, settings = parse(["--model", "m", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem",
                         "--tls-client-ca-file", "ca.pem", "--auth-token-file", "tokens"])
    tls = settings.security.tls
    assert tls is not None and str(tls.client_ca_file) == "ca.pem"
    assert str(settings.security.token_file) == "tokens"
    _, plain = parse(["--model", "m"])
    assert plain.security.tls is None and plain.security.token_file is None


def test_cache_url_replaces_the_file_and_is_checked() -> None:
    _, settings = parse(["--model", "m", "--cache-url", "redis://cache:6379/2"])
    assert settings.cache_url == "redis://cache:6379/2" and settings.cache_path is None
    for wrong in (["--cache-url", "http://cache:6379"],
                  ["--cache-url", "redis://cache", "--no-cache"],
                  ["--cache-url", "redis://cache", "--cache-path", "/tmp/r.sqlite"]):
        with pytest.raises(SystemExit):
            parse(["--model", "m", *wrong])


def test_cache_url_from_the_environment_unless_a_flag_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNTHQA_CACHE_URL", "redis://:pw@cache:6379/0")
    _, settings = parse(["--model", "m"])
    assert settings.cache_url == "redis://:pw@cache:6379/0" and settings.cache_path is None
    _, off = parse(["--model", "m", "--no-cache"])
    assert off.cache_url is None and off.cache_path is None
    _, file = parse(["--model", "m", "--cache-path", "/tmp/r.sqlite"])
    assert file.cache_url is None and str(file.cache_path) == "/tmp/r.sqlite"
