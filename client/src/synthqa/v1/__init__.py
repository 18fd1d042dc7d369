"""Generated protobuf and gRPC stubs for the synthqa.v1 package (from protos/synthqa/v1)."""
