"""Profiles of the pipeline: ``profiles/<name>.yaml`` composed into ``params.yaml``, which DVC reads.

``profiles/default.yaml`` is complete (what ``make repro`` runs); every other profile is a small overlay that
says only what it changes (``extends: default``). The overlay is merged deeply: mappings merge key by key,
lists and scalars replace, and a mapping tagged ``!replace`` replaces the base mapping whole (to drop
variants, e.g. the smoke profile's three ablations instead of the default's twelve).

``params.yaml`` holds the one composed profile under ``active:``, in block style, so that
``dvc exp show`` lists the parameters of the profile that runs (not of every profile) and
``dvc exp run -S active.method.omega=0.4`` changes one line of it. It is generated; edit the profile files
and run ``python -m siasamrea.pipeline.profiles use <name>`` (``make profile PROFILE=<name>``).

``python -m siasamrea.pipeline.profiles sandbox smoke build/smoke`` copies the repository (its tracked files,
without the committed results) to a folder, selects the profile there and, with ``--repro``, runs ``dvc
repro`` in it
sharing this repository's DVC cache: the committed default results are never touched (``make smoke``).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PROFILES_DIR = "profiles"
PARAMS_FILE = "params.yaml"
# the results a profile's run writes: never copied into a sandbox
GENERATED = ("figures/", "metrics/", "dvc.lock")
HEADER = (
    "# GENERATED from profiles/{base}{name}.yaml by `python -m siasamrea.pipeline.profiles use {name}`.\n"
    "# Edit the profile files, not this one, except for a one-off experiment\n"
    "# (`dvc exp run -S active.<key>=<value>`). dvc.yaml reads the `active` profile below;\n"
    "# see profiles/README.md.\n"
)


class Replace(dict):
    """A mapping tagged ``!replace`` in a profile: it replaces the base mapping instead of merging into it."""


class _Loader(yaml.SafeLoader):
    pass


def _replace(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Replace:
    return Replace(loader.construct_mapping(node, deep=True))


_Loader.add_constructor("!replace", _replace)


class _Dumper(yaml.SafeDumper):
    """Block style, and ``null`` written as an empty value as DVC's own YAML writer does, so that
    ``dvc exp run -S`` rewrites only the line it changes."""


_Dumper.add_representer(type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` merged deeply into a copy of ``base`` (see the module docstring for the rules)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Replace):
            out[key] = _plain(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _plain(value)
    return out


def _plain(value):
    """Deep copy with every ``Replace`` turned back into a plain dict (so it dumps as an ordinary mapping)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def available(root: str | Path = ".") -> list[str]:
    return sorted(p.stem for p in (Path(root) / PROFILES_DIR).glob("*.yaml"))


def load_profile(name: str, root: str | Path = ".", _seen: tuple = ()) -> dict:
    """The composed profile ``name`` (``extends`` followed to the complete base profile)."""
    path = Path(root) / PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(root)) or "none"
        raise FileNotFoundError(f"{path}: no such profile (available: {known})")
    if name in _seen:
        raise ValueError(f"{path}: 'extends' loops back to {name!r} ({' -> '.join(_seen + (name,))})")
    raw = yaml.load(path.read_text(), Loader=_Loader) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a profile is a mapping, got {type(raw).__name__}")
    base = raw.pop("extends", None)
    if raw.get("name") != name:
        raise ValueError(f"{path}: 'name' must be {name!r} (the file's name), got {raw.get('name')!r}")
    if base is None:
        return _plain(raw)
    return merge(load_profile(base, root, _seen + (name,)), raw)


def params_text(name: str, root: str | Path = ".") -> str:
    """The text of ``params.yaml`` for profile ``name``: a header and ``active:`` in block style."""
    profile = load_profile(name, root)
    raw = yaml.load((Path(root) / PROFILES_DIR / f"{name}.yaml").read_text(), Loader=_Loader) or {}
    base = f"{raw['extends']}.yaml + profiles/" if raw.get("extends") else ""
    body = yaml.dump(
        {"active": profile}, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120
    )
    return HEADER.format(name=name, base=base) + body


def use(name: str, root: str | Path = ".") -> Path:
    """Write ``params.yaml`` for profile ``name``; returns its path."""
    out = Path(root) / PARAMS_FILE
    out.write_text(params_text(name, root))
    return out


def sandbox(name: str, dst: str | Path, root: str | Path = ".", *, share_cache: bool = True) -> Path:
    """Copy the repository's tracked files (not its committed results) to ``dst``, as a git repository with
    profile ``name`` selected. ``share_cache``: point the copy's DVC cache at this repository's, so a second
    sandbox run restores unchanged stages from DVC's run cache instead of recomputing them."""
    root, dst = Path(root).resolve(), Path(dst).resolve()
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for rel in files:
        src = root / rel
        if not src.is_file() or rel.startswith(GENERATED):
            continue  # a committed result of the default: the sandbox's run must make its own
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    use(name, dst)
    if share_cache:
        cache = root / ".dvc" / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "cache.dir", str(cache)], cwd=dst,
                       check=True, capture_output=True)  # fmt: skip
    git = ["git", "-c", "user.email=sandbox@localhost", "-c", "user.name=sandbox"]
    if not (dst / ".git").exists():
        subprocess.run(git + ["init", "-q"], cwd=dst, check=True, capture_output=True)
    subprocess.run(git + ["add", "-A"], cwd=dst, check=True, capture_output=True)
    subprocess.run(git + ["commit", "-qm", f"sandbox: profile {name}", "--allow-empty"], cwd=dst, check=True,
                   capture_output=True)  # fmt: skip
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m siasamrea.pipeline.profiles", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("use", help="write params.yaml for a profile (the next `dvc repro` runs it here)")
    p.add_argument("name")
    p = sub.add_parser("show", help="print the composed profile")
    p.add_argument("name")
    p = sub.add_parser("sandbox", help="copy the repository to a folder with a profile selected")
    p.add_argument("name")
    p.add_argument("dst")
    p.add_argument("--repro", action="store_true", help="then run `dvc repro` there")
    sub.add_parser("list", help="the available profiles")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(available()))
    elif args.cmd == "show":
        print(yaml.safe_dump(load_profile(args.name), sort_keys=False), end="")
    elif args.cmd == "use":
        params = Path(PARAMS_FILE)
        before = yaml.safe_load(params.read_text())["active"]["name"] if params.is_file() else None
        use(args.name)
        print(f"params.yaml: profile {args.name!r} (was {before!r})", file=sys.stderr)
        if args.name != "default":
            print(
                "note: `dvc repro` now writes this profile's results over figures/, metrics/ and\n"
                "dvc.lock (the committed default's). `python -m siasamrea.pipeline.profiles use default &&\n"
                "dvc repro` brings the default's training runs back from DVC's run cache;\n"
                "`make smoke` runs a profile in a separate folder (build/smoke/).",
                file=sys.stderr,
            )
    elif args.cmd == "sandbox":
        dst = sandbox(args.name, args.dst)
        print(f"{dst}: profile {args.name!r}", file=sys.stderr)
        if args.repro:
            return subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=dst).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
