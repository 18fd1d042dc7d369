"""The gRPC face: protobuf in, calls into the pipeline, protobuf and status codes out.

Owns the generated stubs, the grpc.aio server (health, reflection, keepalive, message caps) and
the mapping of domain errors to `google.rpc` statuses. May import `pipeline` and `text` types;
never `engine` or vLLM.
"""
