"""`make bench`: synthqa against in-process vLLM, vLLM's OpenAI server, and batch-and-wait."""
