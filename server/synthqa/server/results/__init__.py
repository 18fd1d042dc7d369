"""The result cache: a chunk's generation kept by everything that decides it, so a seeded call
made again costs no engine time. Imports nothing else of synthqa."""
