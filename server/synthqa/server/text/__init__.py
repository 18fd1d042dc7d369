"""Text handling with the model's tokenizer: chunking, the prompt frame, the output schema and
the streaming record parser. Pure functions and small classes; imports nothing else of synthqa.
"""
