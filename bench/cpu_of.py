#!/usr/bin/env python3
"""Runs a command and writes the CPU time it used (user + system, its children included) in
microseconds to a file; exits with the command's status. scripts/bench wraps wrk in it, so each
row can say what the load generator itself cost.

    cpu_of.py OUT_FILE COMMAND [ARG...]
"""

import resource
import subprocess
import sys


def main() -> int:
    out, command = sys.argv[1], sys.argv[2:]
    status = subprocess.run(command, check=False).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"{round((usage.ru_utime + usage.ru_stime) * 1e6)}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
