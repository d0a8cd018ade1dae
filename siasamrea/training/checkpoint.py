"""Training checkpoints in safetensors, written atomically, validated on load.

A checkpoint is a directory ``step-<step>/`` with

* ``weights.safetensors``: the model and the training-only objective (W1/W2), as state-dict tensors;
* ``state.safetensors``: every tensor of the optimiser state and the RNG states;
* ``meta.json``: the rest (step, epoch, optimiser/scheduler hyper-parameters, the metric history) and the
  SHA-256 of both tensor files.

It is written into a hidden temporary directory, fsynced and renamed into place, so a kill while saving
leaves either the complete new checkpoint or nothing. On load, a checkpoint whose files do not match the
hashes in its ``meta.json`` (truncated or corrupted later) is reported and the previous one is used.
Nothing is ever unpickled: tensors come from safetensors, the rest from JSON.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from siasamrea.core.fileio import atomic_path

WEIGHTS, STATE, META = "weights.safetensors", "state.safetensors", "meta.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"state": {}, "param_groups": state_dict["param_groups"]}
    for pid, st in state_dict["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict = {int(pid): dict(values) for pid, values in plain["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG states: ``rng.torch`` and ``rng.cuda.<device>``."""
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def _rank_prefix(rank: int) -> str:
    return "rng." if rank == 0 else f"rng.rank{rank}."


def merge_rng_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One dict of every rank's :func:`rng_state` (rank 0 as ``rng.*``, rank r as ``rng.rank<r>.*``).

    Each rank draws its own dropout masks, so its RNG state is its own: restoring rank 0's everywhere would
    make a resumed multi-process run differ from an uninterrupted one.
    """
    out = {}
    for rank, state in enumerate(states):
        out.update({_rank_prefix(rank) + k.removeprefix("rng."): v for k, v in state.items()})
    return out


def set_rng_state(tensors: dict[str, torch.Tensor], rank: int = 0) -> None:
    """Restore ``rank``'s RNG states from a checkpoint's state tensors (see :func:`merge_rng_states`)."""
    prefix = _rank_prefix(rank)
    if prefix + "torch" not in tensors:
        raise ValueError(
            f"the checkpoint holds no RNG state of rank {rank} (written by fewer processes, or before "
            "every rank's state was saved): it cannot be resumed exactly by this process"
        )
    own = {
        k.removeprefix(prefix): v
        for k, v in tensors.items()
        if k.startswith(prefix) and (rank > 0 or not k.startswith("rng.rank"))
    }
    torch.set_rng_state(own["torch"])
    cuda = [own[k] for k in sorted(own) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """``safetensors.torch.save_file``, with an error that names the file (safetensors' own does not)."""
    try:
        save_file(tensors, str(path))
    except (SafetensorError, OSError) as e:  # e.g. "No space left on device (os error 28)"
        raise OSError(f"cannot write {path}: {e}") from e


def save_checkpoint(
    directory: str | Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler,
    meta: dict,
    *,
    keep: int = 2,
    rng: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``directory/step-<step>/`` atomically and keep only the ``keep`` newest checkpoints.

    ``rng``: the RNG states to store (:func:`merge_rng_states` of every rank); default: this process's.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    with atomic_path(final) as tmp:  # files and directory fsynced before the rename
        tmp.mkdir()
        _write_checkpoint(tmp, weights, optimizer, scheduler, meta, step, rng)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_checkpoint(tmp: Path, weights, optimizer, scheduler, meta: dict, step: int, rng) -> None:
    opt_tensors, opt_plain = _flatten_optimizer(optimizer.state_dict())
    save_tensors({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / WEIGHTS)
    save_tensors({**opt_tensors, **(rng_state() if rng is None else rng)}, tmp / STATE)
    full_meta = {
        **meta,
        "step": step,
        "optimizer": opt_plain,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "sha256": {WEIGHTS: _sha256(tmp / WEIGHTS), STATE: _sha256(tmp / STATE)},
    }
    (tmp / META).write_text(json.dumps(full_meta, default=_json_default))


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint directories, oldest first (temporary directories of interrupted saves are ignored)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))


def validate(path: Path) -> str | None:
    """``None`` if the checkpoint is complete and intact, else the reason."""
    meta_path = path / META
    if not meta_path.is_file():
        return "no meta.json (interrupted save)"
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        return f"meta.json unreadable ({e})"
    for name, digest in meta.get("sha256", {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if _sha256(f) != digest:
            return f"{name} does not match its checksum (truncated or corrupted)"
    return None


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest intact checkpoint; broken newer ones are reported with a warning and skipped."""
    for path in reversed(list_checkpoints(directory)):
        reason = validate(path)
        if reason is None:
            return path
        warnings.warn(f"skipping checkpoint {path}: {reason}", stacklevel=2)
    return None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """``(weights, state_tensors, meta)`` of a checkpoint directory (validated first)."""
    p = Path(path)
    reason = validate(p)
    if reason is not None:
        raise ValueError(f"checkpoint {p} is not usable: {reason}")
    meta = json.loads((p / META).read_text())
    return load_file(str(p / WEIGHTS)), load_file(str(p / STATE)), meta


def restore_optimizer(optimizer: torch.optim.Optimizer, state_tensors: dict, meta: dict) -> None:
    optimizer.load_state_dict(_unflatten_optimizer(state_tensors, meta["optimizer"]))
