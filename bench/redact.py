"""What registering many referenced values costs, beside spelling them all once.

    .venv/bin/python bench/redact.py [--values 10000]

An account with a secret of its own per source registers one value per source while its
files load. The figure is the CPU time of registering `--values` distinct 32-character
values one by one; the floor, in the same process, is spelling the same values in every
form once (`redact._refresh()` over all of them), which any registration has to do at
least. Then the CPU time of `holds` (the planner's check of a live value) on 2,000 texts
of 100 characters, and of `scrub` on a 100 kB output, with that many values registered.
"""

from __future__ import annotations

import argparse
import random
import time

from reconciler import redact


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=10_000)
    count = parser.parse_args().values
    rng = random.Random(8)
    values = [f"{rng.getrandbits(128):032x}" for _ in range(count)]

    start = time.process_time()
    for value in values:
        redact.register(value)
    registering = time.process_time() - start

    start = time.process_time()
    redact._refresh()
    floor = time.process_time() - start

    texts = [f"annotation {n:05d} " * 6 for n in range(2_000)]
    start = time.process_time()
    found = sum(redact.holds(text) for text in texts)
    holding = time.process_time() - start
    assert found == 0 and redact.holds(f"x {values[-1]} y")

    output = ("plan line without a value " * 4000)[:100_000]
    start = time.process_time()
    redact.scrub(output)
    scrubbing = time.process_time() - start

    print(
        f"register {count:,} values: {registering:.3f} s CPU; floor (spell them all once): "
        f"{floor:.3f} s; ratio {registering / max(floor, 1e-9):.2f}x (goal <= 2x)"
    )
    print(
        f"holds on 2,000 texts: {holding * 1000:.1f} ms CPU; scrub of 100 kB: "
        f"{scrubbing * 1000:.1f} ms CPU"
    )


if __name__ == "__main__":
    main()
