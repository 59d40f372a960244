#!/usr/bin/env python3
"""Renders scripts/bench's results as one table (text on stdout, optionally markdown).

    report.py HEADER_FILE ROWS_TSV [MARKDOWN_FILE]

HEADER_FILE: lines printed above the table (machine, versions, settings).
ROWS_TSV: one scenario per line, tab-separated raw numbers (empty = not measured):
    label requests seconds p50_us p99_us unexpected cpu_us rss_kb log_bytes notes ceiling
The first row is the ceiling. A row's ratio is its req/s over its own ceiling (req/s, measured
in slices alternating with its load) when it has one, else over the first row's.
"""

import sys

COLUMNS = ["scenario", "requests", "req/s", "p50 ms", "p99 ms", "unexpected",
           "CPU µs/req", "RSS MB", "log B/req", "ratio", "notes"]
RIGHT = {1, 2, 3, 4, 5, 6, 7, 8, 9}


def num(s):
    return float(s) if s.strip() else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def rows(path):
    out, ceiling = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            label, requests, seconds, p50, p99, unexpected, cpu, rss, log, notes, own = \
                line.rstrip("\n").split("\t")
            requests, seconds = num(requests), num(seconds)
            rate = requests / seconds if requests and seconds else 0.0
            ceiling = ceiling or rate
            against = num(own) or ceiling
            per_request = (lambda v: v / requests if v is not None and requests else None)
            out.append([
                label,
                fmt(requests),
                fmt(rate),
                fmt(num(p50) / 1000, 1),
                fmt(num(p99) / 1000, 1),
                fmt(num(unexpected)),
                fmt(per_request(num(cpu))),
                fmt(num(rss) / 1024 if num(rss) is not None else None, 1),
                fmt(per_request(num(log))),
                fmt(rate / against if against else None, 2),
                notes,
            ])
    return out


def text_table(table):
    widths = [max(len(r[i]) for r in [COLUMNS] + table) for i in range(len(COLUMNS))]
    lines = []
    for n, r in enumerate([COLUMNS] + table):
        cells = [c.rjust(widths[i]) if i in RIGHT else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(table):
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if i in RIGHT else "---" for i in range(len(COLUMNS))) + "|"]
    for r in table:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


LEGEND = ("unexpected = answers outside the expected class (2xx; 4xx for invalid) plus socket "
          "errors and timeouts; CPU, RSS (peak) and log are flowgate's own, over the load; "
          "ratio = req/s over the ceiling's in this run: the load ran in short slices alternating "
          "with the ceiling's, and each slice counts against the mean of the ceiling slices "
          "either side of it (their range is in the notes); the first row's when a load has none.")


def main():
    header = open(sys.argv[1], encoding="utf-8").read().rstrip("\n")
    table = rows(sys.argv[2])
    print(header)
    print()
    print(text_table(table))
    print()
    print(LEGEND)
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w", encoding="utf-8") as md:
            md.write("\n".join(f"{l}  " for l in header.splitlines()) + "\n\n")
            md.write(markdown_table(table) + "\n\n" + LEGEND + "\n")


if __name__ == "__main__":
    main()
