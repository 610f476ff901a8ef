"""`make bench` entry point (the benchmark suite is filled in by the benchmarks issue)."""

import sys

if __name__ == "__main__":
    sys.exit("no benchmarks yet")
