"""A corpus on Ray Data (the `ray` extra): files to documents (ExtractDocuments), documents to
the CLI's record lines (GenerateRecords), and the whole run sharded, written shard by shard and
resumable (generate_dataset). docs/ray.md tells how to run it and read its output."""

from .extract import DOCUMENT_SCHEMA, ExtractDocuments
from .generate_shards import SUMMARY_SCHEMA, GenerateShards
from .pipeline import generate_dataset
from .records import GenerateRecords, IncompleteDocument, ReplicaUnavailable
from .shards import options_hash, shard_key, shard_of

__all__ = ["DOCUMENT_SCHEMA", "SUMMARY_SCHEMA", "ExtractDocuments", "GenerateRecords",
           "GenerateShards", "IncompleteDocument", "ReplicaUnavailable", "generate_dataset",
           "options_hash", "shard_key", "shard_of"]
