#!/usr/bin/env python3
"""first-match.py: read lines from stdin and print the wall-clock time (seconds since the
epoch, float) at which the first line matching REGEX arrived, then exit 0; exit 1 if
stdin ends first. For benchmarks that time a watcher's output."""
import re
import sys
import time

pattern = re.compile(sys.argv[1])
for line in sys.stdin:
    if pattern.search(line):
        print("%.6f" % time.time(), flush=True)
        sys.exit(0)
sys.exit(1)
