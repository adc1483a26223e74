"""mypy over the whole tree, against a recorded baseline of known errors.

`make lint` runs this: it fails when mypy reports an error a file did not have
(a new kind, or more of one kind), so typing never gets worse; it says when a file
has fewer errors than recorded, so the baseline can be lowered (`--update`). The
goal is an empty baseline: docs/contributing.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".ci" / "mypy-baseline.json"
ERROR = re.compile(r"^(?P<file>[^:]+):\d+: error: .*\[(?P<code>[a-z-]+)\]$")


def current() -> tuple[Counter[str], str]:
    result = subprocess.run([sys.executable, "-m", "mypy", "."], cwd=ROOT, capture_output=True, text=True)
    if result.returncode not in (0, 1) or "error: " in result.stderr:
        sys.exit(f"mypy did not run:\n{result.stdout}\n{result.stderr}")
    counts: Counter[str] = Counter()
    for line in result.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            counts[f"{match['file']} [{match['code']}]"] += 1
    return counts, result.stdout


def main() -> int:
    counts, output = current()
    if "--update" in sys.argv:
        BASELINE.write_text(json.dumps(dict(sorted(counts.items())), indent=1) + "\n")
        print(f"mypy baseline: {sum(counts.values())} known errors in {len(counts)} (file, code) pairs")
        return 0
    baseline: dict[str, int] = json.loads(BASELINE.read_text())
    worse = {key: (n, baseline.get(key, 0)) for key, n in counts.items() if n > baseline.get(key, 0)}
    better = {key: (counts.get(key, 0), n) for key, n in baseline.items() if counts.get(key, 0) < n}
    for key, (now, was) in sorted(worse.items()):
        print(f"NEW mypy errors: {key}: {now} (baseline {was})")
    for key, (now, was) in sorted(better.items()):
        print(f"fewer mypy errors: {key}: {now} (baseline {was}); run `python .ci/mypy_ratchet.py --update`")
    if worse:
        print(output)
        print("mypy: new type errors (above); fix them, the baseline only ever goes down")
        return 1
    print(f"mypy: {sum(counts.values())} known errors (baseline {sum(baseline.values())}), none new")
    return 0


if __name__ == "__main__":
    sys.exit(main())
