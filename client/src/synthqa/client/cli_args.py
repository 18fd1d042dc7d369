"""The flags every command that calls the server takes, shared by `synthqa` and
`python -m synthqa.ray`: the target, the call deadline and retries, TLS and the token, and one
flag per generation option (built from synthqa.contract.options.OPTIONS)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from synthqa.contract.options import OPTIONS, OptionSpec, OptionValue

from .channel import Credentials, token_problem
from .retry import DEFAULT_RETRIES

TOKEN_VARIABLE = "SYNTHQA_TOKEN"
# gRPC's own target schemes; their values may hold commas (ipv4:a:1,b:2) and pass as they are.
TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")


def add_connection_arguments(parser: argparse.ArgumentParser, *,
                             target_default: str | None = "localhost:50051") -> None:
    """--target, --timeout, --retries and the security group (--tls, --ca-file, --cert-file,
    --key-file, --token). With `target_default` None, --target is required."""
    default = " (default %(default)s)" if target_default is not None else ""
    parser.add_argument("--target", default=target_default, required=target_default is None,
                        type=targets,
                        help="server host:port, any gRPC target (dns:///name:port spreads "
                        "calls over every address of the name), or several host:port "
                        f"replicas separated by commas{default}")
    parser.add_argument("--timeout", type=float, default=None, help="call deadline in seconds")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                        help="times chunks lost to a failed engine are asked for again, once "
                        "the server is SERVING (default %(default)s)")
    security = parser.add_argument_group("security")
    security.add_argument("--tls", action="store_true",
                          help="TLS, checking the server against the system's CAs or --ca-file")
    security.add_argument("--ca-file", type=Path, default=None,
                          help="PEM CA that signed the server's certificate (implies --tls)")
    security.add_argument("--cert-file", type=Path, default=None,
                          help="client certificate for mutual TLS (with --key-file)")
    security.add_argument("--key-file", type=Path, default=None,
                          help="the PEM private key of --cert-file")
    security.add_argument("--token", default=os.environ.get(TOKEN_VARIABLE) or None,
                          help=f"bearer token for every call (default: ${TOKEN_VARIABLE})")


def check_connection(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot check of those flags alone; a problem ends with usage (exit 2)."""
    if args.retries < 0:
        parser.error("--retries must not be negative")
    if (args.cert_file is None) != (args.key_file is None):
        parser.error("--cert-file and --key-file go together")
    if args.token and (problem := token_problem(args.token)):
        parser.error(f"--token (or ${TOKEN_VARIABLE}): {problem}")


def credentials(args: argparse.Namespace) -> Credentials:
    return Credentials(tls=args.tls, ca_file=args.ca_file, cert_file=args.cert_file,
                       key_file=args.key_file, token=args.token)


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """One flag per generation option, unset by default (the server's default applies)."""
    group = parser.add_argument_group("generation options (unset: the server's default)")
    for spec in OPTIONS:
        spec.add_flag(group, spec.flag, None,
                      spec.help + (" (@FILE: read from FILE)" if reads_files(spec) else ""))


def generation_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options as the client's keyword arguments (None where unset), @FILE texts read."""
    options = {spec.name: spec.from_flag(getattr(args, spec.name)) for spec in OPTIONS}
    options.update({spec.name: _text_from_file(options[spec.name])
                    for spec in OPTIONS if reads_files(spec)})
    return options


def reads_files(spec: OptionSpec) -> bool:
    """Texts that may be long (a schema, instructions) may come from a file; a name (an
    adapter's) may not."""
    return (spec.kind is str and not spec.bounds.choices and not spec.is_list
            and spec.name != "adapter")


def targets(value: str) -> str | list[str]:
    """One gRPC target, or several host:port replicas separated by commas."""
    if "," not in value or value.startswith(TARGET_SCHEMES):
        return value
    return [part.strip() for part in value.split(",") if part.strip()]


def _text_from_file(value: OptionValue | None) -> OptionValue | None:
    """A text option given as @PATH (a schema, long instructions) is the file's text."""
    if isinstance(value, str) and value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value
