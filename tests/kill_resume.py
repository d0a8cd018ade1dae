"""Kill -9 a training run at random points, resume it each time, and check it ends bitwise equal to an
uninterrupted run: for one process, or for ``torchrun`` with two (gloo, CPU), dropout on.

    python tests/kill_resume.py --nproc 1 --kills 10 --seed 0      # builds a small synthetic benchmark
    python tests/kill_resume.py --nproc 2 --kills 10 --seed 0 --work /tmp/kr

Each kill point is a random training step (reached as the run logs it) plus a random delay of up to
0.25 s, so kills land inside forward/backward passes, evaluations and checkpoint saves alike; about one kill
in three is a start-up kill instead (before the first checkpoint, or while resuming). The whole process
tree is killed (torchrun and its workers, which run in sessions of their own).
``tests/test_resume_ddp.py`` runs the same code with fewer kill points.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import synthetic_overrides
from test_resume import assert_same_run

from siasamrea.data.frames import build_frame_cache
from siasamrea.data.tokenization import build_from_vocab_file
from siasamrea.synthetic.generator import SynthConfig, generate

#: 48 training questions, 4 per process and step, 3 epochs: 36 steps in one process, 18 per process in two.
SETTINGS = ["method.num_clips=3", "method.frames_per_clip=2", "optim.epochs=3", "optim.batch_size=4",
            "data.train_limit=48", "eval.batch_size=16", "run.log_every=1", "run.analysis_videos=2",
            "run.checkpoint_every=2"]  # fmt: skip


def command(root: Path, out: Path, nproc: int, *extra: str) -> list[str]:
    sets = [a for o in synthetic_overrides(root, "msvd-qa", out, *SETTINGS, *extra) for a in ("--set", o)]
    if nproc == 1:
        return [sys.executable, "-m", "siasamrea.training", *sets]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "siasamrea.training", *sets]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_to_end(cmd: list[str], timeout: float = 900) -> float:
    """Run ``cmd`` to the end (it must succeed); the seconds it took."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return time.monotonic() - t0


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc). torchrun starts its workers in sessions of their own, so
    killing its process group would leave them running."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every process below it, all at once (stopped first, so none reacts to another's
    death: torchrun would otherwise tear its workers down gracefully). Returns the pids killed."""
    procs = [pid, *_descendants(pid)]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
    return procs


def _last_step(out: Path) -> int:
    try:
        with open(out / "log.csv", newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        return int(rows[-1][0]) if len(rows) > 1 else 0
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def kill_and_resume(root: Path, work: Path, nproc: int, kills: int, seed: int = 0,
                    reference: Path | None = None) -> dict:  # fmt: skip
    """Kill a run ``kills`` times at random points, finish it, and return what happened (see module doc).

    ``reference``: an uninterrupted run of the same settings (made here if ``None``).
    """
    rng = random.Random(seed)
    if reference is None:
        reference = work / "reference"
        run_to_end(command(root, reference, nproc))
    total = json.loads((reference / "metrics.json").read_text())["steps"]
    out = work / "killed"
    cmd = command(root, out, nproc)
    # Random steps over the run (sorted: each restart must still have them ahead); about one kill in three
    # is a start-up kill instead (0), put at a random place: before the first checkpoint, or while resuming.
    startups = sum(rng.random() < 1 / 3 for _ in range(kills))
    targets = sorted(rng.randrange(1, total) for _ in range(kills - startups))
    for _ in range(startups):
        targets.insert(rng.randrange(len(targets) + 1), 0)
    events = []
    for target in targets:
        t0 = time.monotonic()
        logged = _last_step(out)
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)  # fmt: skip
        killed: list[int] = []
        try:
            if target == 0:  # during start-up: before the first step, or while the first one runs
                time.sleep(rng.uniform(0.5, 6.0))
            else:
                # A target the log has passed already (rows of steps lost by the last kill): one new step.
                target = max(target, logged + 1)
                while _last_step(out) < target and proc.poll() is None:
                    assert time.monotonic() - t0 < 600, "no progress within 600 s"
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.25))  # somewhere inside the next step(s) or a save
            finished = proc.poll() is not None
            killed = [] if finished else kill_tree(proc.pid)
        finally:
            # Only when the kill above was not reached (an exception). Right after SIGKILL, poll() can
            # still say "running" (not reaped yet); a second kill_tree then found torchrun alone, its
            # workers already gone, and overwrote the record of the kill (a flaky "processes_killed >= 3").
            if not killed and proc.poll() is None:
                killed = kill_tree(proc.pid)
            stderr = proc.communicate()[1].decode(errors="replace")
        deadline = time.monotonic() + 30
        while any(_running(p) for p in killed):
            assert time.monotonic() < deadline, f"a process outlived SIGKILL: {killed}"
            time.sleep(0.01)
        if finished and proc.returncode != 0:
            raise RuntimeError(f"run failed before its kill point:\n{stderr[-4000:]}")
        events.append({"target_step": target, "logged_step": _last_step(out), "finished_first": finished,
                       "processes_killed": len(killed)})  # fmt: skip
    run_to_end(cmd)
    return {"nproc": nproc, "kills": kills, "seed": seed, "steps": total, "events": events,
            "reference": str(reference), "killed": str(out)}  # fmt: skip


def build_benchmark(root: Path) -> Path:
    """The MSVD-QA part of a small synthetic benchmark, its tokenizer and 32x32 frame cache."""

    if not (root / "cache32" / "msvd-qa" / "index.json").is_file():
        sizes = dict(tgif_train=4, tgif_test=2, msvd_train=60, msvd_val=10, msvd_test=24, how2qa_train=4,
                     how2qa_val=2, stills_train=4, stills_test=2)  # fmt: skip
        cfg = SynthConfig(seed=7, tgif_format="mp4", workers=2, **sizes)
        generate(cfg, root, progress=False)
        build_from_vocab_file(root / "vocab.txt", root / "tokenizer")
        videos = sorted((root / "msvd-qa" / "videos").glob("*.mp4"))
        build_frame_cache(videos, root / "cache32" / "msvd-qa", 32, workers=2)
    return root


def main() -> int:

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    args = p.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    root = build_benchmark(work / "synthetic")
    t0 = time.monotonic()
    report = kill_and_resume(
        root, work / f"nproc{args.nproc}-seed{args.seed}", args.nproc, args.kills, args.seed
    )
    assert_same_run(Path(report["reference"]), Path(report["killed"]))
    report["bitwise_equal"] = True
    report["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
