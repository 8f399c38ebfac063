"""The serving layer: the HTTP API (`api`, `openai_api`), the chat page (`page`, `cards`), the server's
middleware (`limits`, `telemetry`), the terminal chat (`terminal`) and the remote client (`remote`).

It never imports the evaluation layer.
"""
