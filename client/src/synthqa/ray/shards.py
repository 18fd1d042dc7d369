"""Which shard a document belongs to, and what names a shard's output: both follow from the
documents' bytes and the generation options, never from paths or the order files are listed
in, so a rerun over the same corpus finds the shards it finished.

A document's shard is a bucket of the hash of its file's sha256 and the options' hash. A
shard's key is the hash of the options' hash and its members' sorted sha256s: a shard whose
membership changed (a file added, removed or edited) gets a new key, so it is generated
again rather than taken for done."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from synthqa.client.options import generation_options
from synthqa.contract.options import OptionArgument, OptionValue
from synthqa.contract.wire import options_from_message
from synthqa.v1 import synthqa_pb2 as pb

Options = Mapping[str, OptionArgument | None] | pb.GenerationOptions
# A shard key's length: 128 bits of sha256, unique across any corpus.
KEY_HEX_CHARS = 32


def canonical_options(options: Options | None) -> dict[str, OptionValue]:
    """The options that are set, one spelling for one meaning: through the wire message, so
    unset and None agree, a list and a tuple agree, 1 and 1.0 agree for a float option. An
    unknown name raises TypeError, a value the contract refuses ValueError (as the
    clients' keyword arguments do)."""
    if isinstance(options, pb.GenerationOptions):
        return options_from_message(options)
    return options_from_message(generation_options(**dict(options or {})))


def options_hash(options: Options | None) -> str:
    canonical = json.dumps(canonical_options(options), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def shard_of(sha256: str, options_digest: str, num_shards: int) -> int:
    """The shard of a file with this sha256 under the options whose hash is `options_digest`."""
    if num_shards < 1:
        raise ValueError("num_shards must be at least 1")
    digest = hashlib.sha256(f"{options_digest}\0{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def shard_key(options_digest: str, member_sha256s: Iterable[str]) -> str:
    """The name of a shard's output: its options and exactly its members (skipped files
    included, so a file that is fixed makes its shard new)."""
    members = "\n".join(sorted(member_sha256s))
    return hashlib.sha256(f"{options_digest}\0{members}".encode()).hexdigest()[:KEY_HEX_CHARS]
