"""The engine adapter. `types` holds the plain data and errors the pipeline sees;
`vllm_engine` is the only module of the server that imports vLLM.
"""
