"""Curation between checking a record and sending it: a judge on the same engine, and
duplicates removed within a call. Imports `engine.types` and `text`; never vLLM or protobuf."""
