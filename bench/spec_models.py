"""What building the spec models costs at start-up, model by model, beside an empty model.

    .venv/bin/python bench/spec_models.py [--runs 7]

Each run is a fresh interpreter that first imports every third-party module `validate`
imports (found as `bench/startup.py` finds them: pydantic's lazily imported parts too)
and the modules of ours `reconciler.specs` imports, then imports `reconciler.specs`
with the cycle collector off, timing in CPU each model class as pydantic builds it. The
baseline, in the same process, is one model of one `str` field built after them: what a
model costs before any of its fields. The figure is the best of `--runs` processes, each
model's and the total's taken separately. Plugins are off, as in the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from startup import EXAMPLE, REPO, baseline_code, imports_of

PROBE = """
import gc, json, sys, time
import pydantic
from pydantic._internal import _model_construction
import reconciler.references, reconciler.rendering_params
built = []
real_new = _model_construction.ModelMetaclass.__new__
def timed_new(mcs, name, bases, namespace, *args, **kwargs):
    started = time.process_time()
    cls = real_new(mcs, name, bases, namespace, *args, **kwargs)
    built.append((name, time.process_time() - started))
    return cls
_model_construction.ModelMetaclass.__new__ = timed_new
gc.disable()
started = time.process_time()
import reconciler.specs
total = time.process_time() - started
models = list(built)
class Empty(pydantic.BaseModel):
    name: str
print(json.dumps({"total": total, "models": models, "empty": built[-1][1]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="spec-models-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPYCACHEPREFIX=cache, PYDANTIC_DISABLE_PLUGINS="__all__")
        imported, kept_out = imports_of(env, ["validate", "--no-resolve", str(EXAMPLE)])
        # Its closing `gc.freeze()` runs before the timing, which turns the collector off.
        probe = baseline_code(imported, kept_out) + "\n" + PROBE
        for run in range(args.runs + 1):  # the first one writes the bytecode
            done = subprocess.run(
                [sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
                env=env,
            )
            if run == 0:
                continue
            found = json.loads(done.stdout)
            figures = {
                "import of reconciler.specs": found["total"],
                "all its models": sum(seconds for _, seconds in found["models"]),
                "baseline: a model of one str field": found["empty"],
                **{name: seconds for name, seconds in found["models"]},
            }
            for name, seconds in figures.items():
                best[name] = min(best.get(name, float("inf")), seconds)
    empty = best["baseline: a model of one str field"]
    print(f"best of {args.runs} processes, CPU, pydantic already imported, collector off")
    for name, seconds in best.items():
        print(f"{name:36}{seconds * 1000:7.2f} ms{seconds / empty:7.1f}x the baseline")


if __name__ == "__main__":
    main()
