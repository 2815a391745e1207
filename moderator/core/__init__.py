"""Pure text and verdict logic shared by every entry point (no I/O)."""
