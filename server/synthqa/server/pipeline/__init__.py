"""The generation pipeline, as plain Python: options and plans, the Generate stream protocol,
per-call sessions with their admission windows, and the chunk generator.

Imports `text` and the engine's plain types (`engine.types`); never protobuf, grpc or vLLM, so
every rule here can be tested on a scripted engine.
"""
