"""Offline Anthropic-compatible upstream server ("the emulator").

Importable without Django: `apps.upstream.app.create_app()` builds a Starlette ASGI app that speaks the
Messages, Token Counting and Message Batches APIs well enough for the official `anthropic` SDK, and
`apps.upstream.testing.start_upstream_in_thread()` runs it for tests and benchmarks. See
docs/upstream.md.
"""
