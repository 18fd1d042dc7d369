"""Plain-Python facts about the wire contract that the server and every Python client share.

No grpc and no protobuf here: the server's domain code imports this without touching the wire.
"""
