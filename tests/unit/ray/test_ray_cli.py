"""`python -m synthqa.ray` without Ray running: its flags (the CLI's own connection, security
and generation-option flags), their mapping to generate_dataset's arguments, what it refuses
before anything runs, and its summary and exit codes (ray.init and generate_dataset stand-ins)."""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path
from typing import Any

import pytest

from synthqa.client.channel import Credentials
from synthqa.client.cli import build_parser as synthqa_parser
from synthqa.client.cli_args import TOKEN_VARIABLE
from synthqa.contract.options import OPTIONS
from synthqa.ray import cli
from synthqa.ray.pipeline import generate_dataset

REQUIRED = ["/corpus", "--target", "dns:///synthqa:50051", "--out", "/shared/out",
            "--num-shards", "8"]


def option_flags(parser: Any, title: str) -> set[str]:
    [group] = [group for group in parser._action_groups if group.title == title]
    return {flag for action in group._group_actions for flag in action.option_strings}


def test_the_defaults_are_generate_datasets_own() -> None:
    arguments = cli.dataset_arguments(cli.parse(REQUIRED))
    assert arguments["target"] == "dns:///synthqa:50051"
    assert arguments["out"] == "/shared/out" and arguments["num_shards"] == 8
    assert arguments["options"] == {}
    assert arguments["credentials"] == Credentials()
    defaults = {name: parameter.default for name, parameter
                in inspect.signature(generate_dataset).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    # Every argument it passes is one generate_dataset takes; those it leaves to the
    # function (the extracting actors' CPUs) are the only ones missing.
    assert set(arguments) - {"target", "out", "num_shards"} <= set(defaults)
    assert set(defaults) - set(arguments) == {"extract_num_cpus"}
    for name, value in arguments.items():
        if name in defaults and name not in ("options", "credentials"):
            assert value == defaults[name], name


def test_every_flag_reaches_its_argument(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    instructions = tmp_path / "instructions.txt"
    instructions.write_text("Ask about dates.")
    args = cli.parse([
        "s3://bucket/corpus/a", "s3://bucket/corpus/b", "--root", "s3://bucket/corpus",
        "--target", "replica-1:50051,replica-2:50051", "--out", str(tmp_path / "out"),
        "--num-shards", "256", "--concurrency", "8", "--streams", "2", "--max-in-flight", "4",
        "--format", "jsonl", "--extract-concurrency", "3", "--max-shard-retries", "5",
        "--timeout", "120", "--retries", "4", "--tls", "--ca-file", str(ca),
        "--token", "s3cret", "--num-pairs", "3", "--seed", "1", "--no-judge",
        "--record-shape", "custom", "--record-choices", "yes", "--record-choices", "no",
        "--instructions", f"@{instructions}"])
    assert args.inputs == ["s3://bucket/corpus/a", "s3://bucket/corpus/b"]
    assert cli.dataset_arguments(args) == {
        "target": ["replica-1:50051", "replica-2:50051"], "out": str(tmp_path / "out"),
        "options": {"num_pairs": 3, "seed": 1, "judge": False, "record_shape": "custom",
                    "record_choices": ("yes", "no"), "instructions": "Ask about dates."},
        "num_shards": 256,
        "credentials": Credentials(tls=True, ca_file=ca, token="s3cret"),
        "concurrency": 8, "format": "jsonl", "root": "s3://bucket/corpus", "streams": 2,
        "max_in_flight": 4, "timeout": 120.0, "retries": 4, "extract_concurrency": 3,
        "max_shard_retries": 5,
    }


def test_the_generation_option_flags_are_the_clis_own() -> None:
    title = "generation options (unset: the server's default)"
    generate = synthqa_parser()._subparsers._group_actions[0].choices["generate"]
    ours = option_flags(cli.build_parser(), title)
    assert ours == option_flags(generate, title)
    assert {spec.flag for spec in OPTIONS} <= ours


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "from-env")
    assert cli.dataset_arguments(cli.parse(REQUIRED))["credentials"].token == "from-env"


def test_a_relative_ca_file_reaches_the_actors_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    monkeypatch.chdir(tmp_path)
    credentials = cli.dataset_arguments(cli.parse([*REQUIRED, "--ca-file", "ca.pem"]))[
        "credentials"]
    assert credentials.ca_file == tmp_path / "ca.pem" and credentials.secure


@pytest.mark.parametrize(("argv", "message"), [
    (["/corpus", "--out", "/o", "--num-shards", "2"], "the following arguments are required: "
     "--target"),
    ([*REQUIRED[:-1], "0"], "--num-shards must be at least 1"),
    ([*REQUIRED, "--concurrency", "0"], "--concurrency must be at least 1"),
    ([*REQUIRED, "--max-shard-retries", "-1"], "--max-shard-retries must be at least 0"),
    ([*REQUIRED, "--retries", "-1"], "--retries must not be negative"),
    ([*REQUIRED, "--format", "csv"], "invalid choice: 'csv'"),
    ([*REQUIRED, "--out", "s3://bucket/out"], "an object store cannot do"),
    (["s3://bucket/corpus", *REQUIRED[1:]], "with URIs, give --root"),
    ([*REQUIRED, "--ca-file", "/nowhere/ca.pem"], "--ca-file /nowhere/ca.pem: no such file"),
    ([*REQUIRED, "--cert-file", "/nowhere/c.pem"], "--cert-file and --key-file go together"),
    ([*REQUIRED, "--token", "s3cret\n"], "--token (or $SYNTHQA_TOKEN): the token's character 7"),
])
def test_refused_before_anything_runs(argv: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.parse(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


class StandIn:
    """ray.init and generate_dataset, recording their calls."""

    def __init__(self, result: list[dict[str, Any]] | BaseException) -> None:
        self.result = result
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.initialized = 0

    def init(self, *args: Any, **kwargs: Any) -> None:
        assert not args and not kwargs, "the address comes from RAY_ADDRESS, as in a Ray job"
        self.initialized += 1

    def generate(self, inputs: Any, **kwargs: Any) -> list[dict[str, Any]]:
        assert self.initialized == 1, "generate_dataset before ray.init"
        self.calls.append((inputs, kwargs))
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    fake = StandIn([])
    monkeypatch.setattr(cli.ray, "init", fake.init)
    monkeypatch.setattr(cli, "generate_dataset", fake.generate)
    return fake


def summary(key: str, documents: int, records: int, existing: bool = False,
            skipped: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {"key": key, "shard": 0, "file": f"/shared/out/{key}.parquet",
            "documents": documents, "records": records, "skipped_existing": existing,
            "skipped": [{"document_id": d, "reason": r} for d, r in skipped]}


def test_main_runs_the_corpus_and_sums_it_up(stand_in: StandIn,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    stand_in.result = [summary("a", 10, 30), summary("b", 5, 15, existing=True),
                       summary("c", 0, 0)]
    assert cli.main([*REQUIRED, "--num-pairs", "3"]) == 0
    [(inputs, kwargs)] = stand_in.calls
    assert inputs == ["/corpus"]
    assert kwargs == cli.dataset_arguments(cli.parse([*REQUIRED, "--num-pairs", "3"]))
    err = capsys.readouterr().err
    assert "3 shards: 2 written, 1 already there (skipped); 15 documents, 45 records" in err
    assert "skipped (no text)" not in err


def test_skipped_files_are_named_and_exit_3(stand_in: StandIn,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    stand_in.result = [summary("a", 1, 3, skipped=(("x/scan.pdf", "a PDF without a text "
                                                    "layer"),)),
                       summary("b", 0, 0, skipped=(("locked.pdf", "an encrypted PDF"),))]
    assert cli.main(REQUIRED) == 3
    err = capsys.readouterr().err
    assert "2 files skipped (no text):" in err
    assert "  locked.pdf: an encrypted PDF\n" in err
    assert "  x/scan.pdf: a PDF without a text layer\n" in err


@pytest.mark.parametrize(("error", "shown"), [
    (ValueError("no files in /corpus"), "python -m synthqa.ray: no files in /corpus"),
    (RuntimeError("a task failed for good"), "RuntimeError: a task failed for good"),
])
def test_an_error_exits_1(stand_in: StandIn, capsys: pytest.CaptureFixture[str],
                          error: Exception, shown: str) -> None:
    stand_in.result = error
    assert cli.main(REQUIRED) == 1
    assert shown in capsys.readouterr().err


def test_python_dash_m_runs_the_same_main(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["python -m synthqa.ray", "--help"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("synthqa.ray", run_name="__main__", alter_sys=True)
    assert caught.value.code == 0
    assert "usage: python -m synthqa.ray" in capsys.readouterr().out
