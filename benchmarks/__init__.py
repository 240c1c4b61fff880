"""The benchmark suite: the emulator next to raw SQLite and wrangler's local engine, in one run.

Run it with ``make bench`` or ``.venv/bin/python -m benchmarks.run --help``. Nothing here is
collected by pytest and nothing asserts a timing.
"""
