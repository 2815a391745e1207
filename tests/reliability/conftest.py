"""Fault tests: every one runs real worker processes against the real broker and Redis."""
