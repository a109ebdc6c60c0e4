"""Wall time of whole `wae` processes: `wae --help` and `wae plugins list` (target < 0.5 s).

    python benchmarks/cli_startup.py --repeats 10

Listing reads installed metadata and never imports torch; this measures that it stays so. Prints
a table and writes JSON. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "wae --help": ["--help"],
    "wae plugins list": ["plugins", "list"],
    "wae presets list": ["presets", "list"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default="benchmarks/results/cli_startup.json")
    args = parser.parse_args()
    exe = [sys.executable, "-m", "wae_toolkit"]
    rows = []
    for label, argv in COMMANDS.items():
        times = []
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            subprocess.run(exe + argv, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        times = times[1:]  # the first run warms the file cache
        rows.append({"command": label, "median_s": statistics.median(times), "max_s": max(times)})
    print("| command | median s | max s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['command']} | {r['median_s']:.3f} | {r['max_s']:.3f} |")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
