"""``python -m siasamrea.pipeline.progress dvc repro [args]``: ``dvc repro`` with a stage counter (``make
repro``).

Before running, it asks DVC which stages are out of date (``Repo.status``) and which stages depend on them
(the pipeline graph): that is the plan, ``N`` stages. While ``dvc repro`` runs, its own output passes
through unchanged, and each ``Running stage 'x'`` line is preceded by ``[k/N] x (elapsed, started at)``.
Training stages add one line per epoch with their ETA
(:meth:`siasamrea.training.trainer.Trainer._report_epoch`); papermill itself stays quiet, so the log stays a
few lines per stage. When the plan cannot be computed
(e.g. dvc.yaml does not parse) the counter shows ``[k/?]`` and DVC reports the problem itself.

``python -m siasamrea.pipeline.progress --plan`` prints the plan and runs nothing: a dry run that also works
on a fresh clone, where ``dvc repro --dry`` stops at the first stage whose input another stage has not made
yet
(treeverse/dvc#9021).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

RUNNING = re.compile(r"Running stage '([^']+)'")
CACHED = re.compile(r"Stage '([^']+)' is cached")


def planned_stages(root: str = ".") -> list[str] | None:
    """The stages ``dvc repro`` will run or restore: out-of-date ones and everything downstream of them."""
    try:
        # Deliberately lazy and inside the try: DVC's Python API is not a stable interface, and when it
        # fails to import or to plan, the counter falls back to [k/?] instead of stopping `make repro`.
        import networkx as nx  # noqa: PLC0415
        from dvc.repo import Repo  # noqa: PLC0415

        with Repo(root) as repo:
            changed = set(repo.status())
            graph = repo.index.graph
            by_name = {s.addressing: s for s in graph.nodes}
            plan = set()
            for name in changed:
                if name in by_name:
                    plan.add(name)
                    plan |= {s.addressing for s in nx.ancestors(graph, by_name[name])}
            # upstream first (DVC's graph has an edge from each stage to the stages it depends on)
            order = [s.addressing for s in reversed(list(nx.topological_sort(graph)))]
            return [name for name in order if name in plan]
    except Exception as e:  # noqa: BLE001 - the counter is a convenience; dvc repro reports real errors
        print(f"progress: could not compute the plan ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def run_with_counter(cmd: list[str], total: str, out=None) -> int:
    """Run ``cmd``, passing its output through, with ``[k/total] stage`` before each stage DVC starts."""
    out = out or sys.stdout
    start = time.monotonic()
    k = 0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = RUNNING.search(line) or CACHED.search(line)
        if m:
            k += 1
            what = "running" if RUNNING.search(line) else "from the run cache"
            out.write(f"[{k}/{total}] {m.group(1)} ({what}; {_clock(time.monotonic() - start)} elapsed)\n")
        out.write(line)
        out.flush()
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    cmd = list(sys.argv[1:] if argv is None else argv)
    if not cmd:
        print(__doc__, file=sys.stderr)
        return 2
    if cmd == ["--plan"]:  # a dry run that works on a fresh clone (`dvc repro --dry` does not, dvc#9021)
        plan = planned_stages()
        print("\n".join(plan) if plan is not None else "could not compute the plan")
        return 0 if plan is not None else 1
    print("progress: asking DVC which stages are out of date ...", file=sys.stderr, flush=True)
    plan = planned_stages()
    total = "?" if plan is None else str(len(plan))
    print(f"progress: {total} stage(s) to run or restore from the run cache", file=sys.stderr, flush=True)
    return run_with_counter(cmd, total)


if __name__ == "__main__":
    sys.exit(main())
