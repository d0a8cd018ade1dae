"""Does a fresh run reproduce the committed results? Within their intervals, not bit for bit.

Bitwise equality holds on one machine with the same thread count; another CPU's floating-point kernels move
single runs by a few points. So the claim the repository makes is statistical, and this command checks it:
every headline number of the tables (last epoch, mean over seeds), every paired difference, the instrument
table and the positive controls, and the regime sweep's gaps of a fresh run against the committed ones.

* A **number** moved when a two-sided Welch t-test of the two sets of seeds rejects equal means at 5%
  (``scipy.stats.ttest_ind_from_stats`` on each side's mean, sd and n).
* A **conclusion** changed when a difference's reading changed: its interval excluded 0 on one side and
  not on the other, or excluded it with the opposite sign.

    python -m siasamrea.analysis.compare --committed <git revision, e.g. HEAD> [--fresh figures]
    python -m siasamrea.analysis.compare --committed path/to/old/figures --fresh figures

Exit status 0 when nothing moved, 1 otherwise (the report lists what did).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import scipy.stats

FILES = ("summary.json", "instrument.json", "regime.json")


def _load(source: str, name: str) -> dict | list | None:
    """``figures/<name>`` from a folder, or from a git revision (``git show <rev>:figures/<name>``)."""
    path = Path(source) / name
    if path.is_file():
        return json.loads(path.read_text())
    if Path(source).is_dir():
        return None
    try:
        text = subprocess.run(["git", "show", f"{source}:figures/{name}"], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip
    except subprocess.CalledProcessError:
        return None
    return json.loads(text)


def numbers(figures: dict) -> dict[str, dict]:
    """Every comparable number: ``{label: summary dict}`` (mean, sd, n, lo, hi) and whether it is a
    difference (its reading, interval against 0, is a conclusion)."""
    out: dict[str, dict] = {}
    summary = figures.get("summary.json") or {}
    for key, table in (summary.get("tables") or {}).items():
        for e in table.get("entries", []):
            if e.get("status") == "ok" and e.get("last", {}).get("n"):
                out[f"{key}: {e['row']} / {e['dataset']} {e['task']} {e['split']}"] = {
                    **e["last"],
                    "diff": False,
                }
        for c in table.get("contrasts", []):
            if c["diff"].get("n"):
                out[f"{key}: {c['label']} / {c['column']}"] = {**c["diff"], "diff": True}
    inst = figures.get("instrument.json") or {}
    for row in inst.get("rows", []):
        for k, v in row.items():
            if isinstance(v, dict) and v.get("n"):
                out[f"instrument: {row['dataset']} {k}"] = {**v, "diff": False}
    for c in inst.get("controls", []):
        if c["gap"].get("n"):
            out[f"control: {c['control']} / {c['dataset']}"] = {**c["gap"], "diff": True}
    for r in figures.get("regime.json") or []:
        if r.get("value", {}).get("n"):
            out[f"regime: {r['point']} {r['gap']}"] = {**r["value"], "diff": True}
    return out


def reading(s: dict) -> str:
    """A difference's conclusion: positive, negative or unresolved (its interval against 0)."""
    lo, hi = s.get("lo"), s.get("hi")
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "no interval"
    return "positive" if lo > 0 else "negative" if hi < 0 else "unresolved"


def welch_p(a: dict, b: dict) -> float | None:
    """Two-sided p of equal means (Welch); ``None`` when either side has fewer than 2 seeds."""
    if a["n"] < 2 or b["n"] < 2 or a.get("sd") is None or b.get("sd") is None:
        return None
    if a["sd"] == 0 and b["sd"] == 0:
        return 1.0 if a["mean"] == b["mean"] else 0.0
    return float(scipy.stats.ttest_ind_from_stats(a["mean"], a["sd"], a["n"], b["mean"], b["sd"], b["n"],
                                                  equal_var=False).pvalue)  # fmt: skip


def compare(committed: dict, fresh: dict, alpha: float = 0.05) -> list[dict]:
    """One row per number present on both sides: values, p, and whether it moved or changed its reading."""
    old, new = numbers(committed), numbers(fresh)
    rows = []
    for label in sorted(old.keys() & new.keys()):
        a, b = old[label], new[label]
        p = welch_p(a, b)
        row = {"number": label, "committed": a["mean"], "fresh": b["mean"], "n": (a["n"], b["n"]), "p": p,
               "moved": p is not None and p < alpha}  # fmt: skip
        if a["diff"]:
            row["committed reading"], row["fresh reading"] = reading(a), reading(b)
            row["conclusion changed"] = row["committed reading"] != row["fresh reading"]
        rows.append(row)
    return rows


def report(rows: list[dict], only_committed: list[str], only_fresh: list[str]) -> str:
    moved = [r for r in rows if r["moved"]]
    changed = [r for r in rows if r.get("conclusion changed")]
    lines = [f"{len(rows)} numbers compared: {len(moved)} moved (Welch p < 0.05), "
             f"{len(changed)} conclusions changed."]  # fmt: skip
    for r in moved:
        lines.append(f"  moved: {r['number']}: {r['committed']:.2f} -> {r['fresh']:.2f} (p = {r['p']:.3f})")
    for r in changed:
        lines.append(f"  conclusion: {r['number']}: {r['committed reading']} -> {r['fresh reading']}")
    if only_committed:
        lines.append(f"  {len(only_committed)} committed numbers have no fresh counterpart (not run?)")
    if only_fresh:
        lines.append(f"  {len(only_fresh)} fresh numbers are new")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.analysis.compare", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--committed", default="HEAD", help="a git revision (its figures/) or a figures folder")
    ap.add_argument("--fresh", default="figures", help="the figures folder of the fresh run")
    ap.add_argument("--json", action="store_true", help="print every compared number as JSON")
    args = ap.parse_args(argv)
    committed = {name: _load(args.committed, name) for name in FILES}
    fresh = {name: _load(args.fresh, name) for name in FILES}
    if not any(committed.values()):
        ap.error(f"--committed {args.committed}: no {', '.join(FILES)} found")
    if not any(fresh.values()):
        ap.error(f"--fresh {args.fresh}: no {', '.join(FILES)} found")
    rows = compare(committed, fresh)
    old, new = numbers(committed), numbers(fresh)
    print(json.dumps(rows, indent=1) if args.json else report(rows, sorted(old.keys() - new.keys()),
                                                               sorted(new.keys() - old.keys())))  # fmt: skip
    return 1 if any(r["moved"] or r.get("conclusion changed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
