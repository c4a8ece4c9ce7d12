"""`make bench`: run every benchmark and print its table."""

from __future__ import annotations

from bench.insights import main

if __name__ == "__main__":
    main()
