"""Worker entrypoints: connect, build dependencies once, register, run."""
