"""synthqa server: a gRPC service that turns documents into question–answer pairs on vLLM."""

__version__ = "0.1.0"
