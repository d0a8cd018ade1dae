"""Reliability: every bad input or fault is refused with a message naming its source (key, file, row, path),
nothing valid is dropped without being counted, a diverged run stops with a non-zero exit and no model, and a
restarted run leaves no stale rows or temporary folders behind.

``BAD_INPUTS`` is the table the README's reliability section summarises: each case does one bad thing and
names what the message must say.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import synthetic_overrides
from safetensors import SafetensorError

from siasamrea.data import cli as data_cli
from siasamrea.data.frames import build_frame_cache
from siasamrea.data.registry import read_split
from siasamrea.data.tokenization import build_from_vocab_file, build_word_tokenizer, load_tokenizer
from siasamrea.method.config import load_config
from siasamrea.training import checkpoint as ckpt
from siasamrea.training.build import load_tasks
from siasamrea.training.cli import EXIT_CONFIG, EXIT_DIVERGED, main, train
from siasamrea.video import read_frames

TINY = ["method.num_clips=3", "method.frames_per_clip=2", "optim.epochs=2", "optim.batch_size=4",
        "data.train_limit=24", "eval.batch_size=16", "run.log_every=1", "run.analysis_videos=0"]  # fmt: skip
HOW2QA_ROW = "vid{i},[1.0:9.0],red,green,blue,what colour is thing {i}?,black"


@dataclass
class Ctx:
    tmp: Path
    synthetic: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch

    def paths(self) -> list[str]:
        """Overrides naming an existing (empty) data root and tokenizer directory."""
        for d in ("ann", "tok"):
            (self.tmp / d).mkdir(exist_ok=True)
        return [f"data.root={self.tmp / 'ann'}", f"data.tokenizer={self.tmp / 'tok'}"]

    def train_cli(self, *overrides: str, config: Path | None = None) -> int:
        args = [a for o in (*self.paths(), *overrides) for a in ("--set", o)]
        return main([*(["--config", str(config)] if config else []), *args])

    def data_cli(self, *argv) -> int:
        return data_cli.main([str(a) for a in argv])

    def how2qa(self, rows: list[str] | None = None, name: str = "how2QA_val_release.csv") -> Path:
        """A How2QA root in the 'full' video layout (no segment mapping needed), val holding ``rows``."""
        root = self.tmp / "how2qa"
        root.mkdir(exist_ok=True)
        if rows is not None:
            (root / name).write_text("".join(r + "\n" for r in rows))
        return root

    def msvd(self, val: list) -> Path:
        """A copy of the synthetic MSVD-QA annotations whose val split is ``val``."""
        root = self.tmp / "msvd-qa"
        root.mkdir(exist_ok=True)
        for f in ("train_qa.json", "test_qa.json", "youtube_mapping.txt"):
            shutil.copy(self.synthetic / "msvd-qa" / f, root)
        (root / "val_qa.json").write_text(json.dumps(val))
        return root

    def synthetic_how2qa(self, val_rows: list[str]) -> Path:
        root = self.tmp / "how2qa-synthetic"
        root.mkdir(exist_ok=True)
        for f in (self.synthetic / "how2qa").iterdir():
            if f.is_file():
                shutil.copy(f, root)
        (root / "how2QA_val_release.csv").write_text("".join(r + "\n" for r in val_rows))
        return root


def _yaml_syntax_error(c: Ctx) -> int:
    bad = c.tmp / "bad.yaml"
    bad.write_text("method:\n  num_clips: 3\n  alpha: [1, 2\noptim:\n  lr: 1\n")
    return c.train_cli(config=bad)


def _cache_mismatch(c: Ctx) -> int:
    return c.train_cli("data.dataset=msvd-qa", f"data.cache={c.synthetic / 'cache32' / 'msvd-qa'}",
                       "data.frame_size=64")  # fmt: skip


def _non_utf8_how2qa(c: Ctx):
    root = c.how2qa()
    rows = [HOW2QA_ROW.format(i=i) for i in range(3)]
    (root / "how2QA_val_release.csv").write_bytes("\n".join(rows).encode().replace(b"thing 1", b"th\xefng 1"))
    return read_split("how2qa", root, "val", on_error="skip", video_layout="full")


def _runaway_how2qa(c: Ctx):
    rows = [HOW2QA_ROW.format(i=i) for i in range(12)]
    rows[5] = rows[5].replace("red,", '"red,')
    return read_split("how2qa", c.how2qa(rows), "val", video_layout="full")


def _duplicate_how2qa(c: Ctx):
    rows = [HOW2QA_ROW.format(i=i) for i in (1, 2, 1)]
    return read_split("how2qa", c.how2qa(rows), "val", video_layout="full")


def _non_utf8_vocab(c: Ctx):
    (c.tmp / "vocab.txt").write_bytes(b"red\ngreen\nbl\xe9u\n")
    return build_from_vocab_file(c.tmp / "vocab.txt", c.tmp / "tokenizer")


def _non_utf8_tokenizer(c: Ctx):
    build_word_tokenizer(["red", "green"], c.tmp / "tokenizer")
    f = c.tmp / "tokenizer" / "tokenizer.json"
    data = f.read_bytes()
    f.write_bytes(data[:120] + b"\xff" + data[120:])
    return load_tokenizer(c.tmp / "tokenizer")


def _full_disk(c: Ctx):
    def no_space(tensors, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    c.monkeypatch.setattr(ckpt, "save_file", no_space)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    return ckpt.save_checkpoint(c.tmp / "checkpoints", 3, model.state_dict(), opt, None, {})


def _train_with_empty_eval(c: Ctx, dataset: str):
    if dataset == "how2qa":
        root = c.synthetic_how2qa([])
        evals = '["val"]'
    else:
        root = c.msvd([])
        evals = '["val", "test"]'
    extra = [f"data.root={root}", f"data.eval_splits={evals}"]
    return load_tasks(load_config(None, synthetic_overrides(c.synthetic, dataset, c.tmp / "run", *extra)))


def _train_with_all_rows_skipped(c: Ctx):
    root = c.msvd([{"id": 1, "video_id": 1, "question": "what?"}])  # no answer: skipped
    overrides = synthetic_overrides(c.synthetic, "msvd-qa", c.tmp / "run", f"data.root={root}",
                                    'data.eval_splits=["val"]', "data.on_error=skip")  # fmt: skip
    return load_tasks(load_config(None, overrides))


#: (case, what it does, what the message must say). Every message names its key, file (and row) or path.
BAD_INPUTS = [
    ("lr-inf", lambda c: c.train_cli("optim.lr=.inf"), r"^config error: optim\.lr: must be a finite number"),
    ("lr-nan", lambda c: c.train_cli("optim.lr=.nan"), r"optim\.lr: must be a finite number, got nan"),
    ("lr-negative", lambda c: c.train_cli("optim.lr=-1e-3"), r"optim\.lr: must be > 0"),
    ("alpha-nan", lambda c: c.train_cli("method.alpha=.nan"), r"method\.alpha: must be a finite number"),
    ("alpha-negative", lambda c: c.train_cli("method.alpha=-1"), r"method\.alpha: must be >= 0"),
    (
        "alpha-zero-siasamrea",
        lambda c: c.train_cli("method.alpha=0"),
        r"method\.alpha: must be > 0 for variant 'siasamrea'",
    ),
    (
        "alpha-zero-skr",
        lambda c: c.train_cli("method.alpha=0", "method.variant=skr_average"),
        r"method\.alpha: must be > 0 for variant 'skr_average'",
    ),
    ("omega-nan", lambda c: c.train_cli("method.omega=.nan"), r"method\.omega: must be a finite number"),
    (
        "temperature-inf",
        lambda c: c.train_cli("method.temperature=.inf"),
        r"method\.temperature: must be a finite",
    ),
    (
        "weight-decay-inf",
        lambda c: c.train_cli("optim.weight_decay=.inf"),
        r"optim\.weight_decay: must be a finite",
    ),
    ("grad-clip-inf", lambda c: c.train_cli("optim.grad_clip=.inf"), r"optim\.grad_clip: must be a finite"),
    ("betas-nan", lambda c: c.train_cli("optim.betas=[0.9, .nan]"), r"optim\.betas: must be a finite number"),
    (
        "frame-size-absurd",
        lambda c: c.train_cli("data.frame_size=100000"),
        r"data\.frame_size: must be in \[16, 4096\]",
    ),
    (
        "reader-option-unknown",
        lambda c: c.train_cli("data.dataset=msvd-qa", 'data.reader={"foo": 1}'),
        r"data\.reader: unknown option 'foo' for the msvd-qa reader \(known: video_dir, ext",
    ),
    (
        "cache-frame-size",
        _cache_mismatch,
        r"data\.frame_size: is 64 but data\.cache .*cache32/msvd-qa holds 32x32",
    ),
    (
        "cache-missing",
        lambda c: c.train_cli(f"data.cache={c.tmp / 'nowhere'}"),
        r"data\.cache: not a frame cache",
    ),
    ("yaml-syntax", _yaml_syntax_error, r"config error: .*bad\.yaml, line 4: YAML syntax error"),
    ("how2qa-non-utf8", _non_utf8_how2qa, r"how2QA_val_release\.csv, row 2: not UTF-8 text: byte 0xef"),
    ("how2qa-runaway-row", _runaway_how2qa, r"how2QA_val_release\.csv, row 6: row ran over 7 lines"),
    (
        "how2qa-duplicate-row",
        _duplicate_how2qa,
        r"how2QA_val_release\.csv, row 3: duplicate row: the same as line 1",
    ),
    ("vocab-non-utf8", _non_utf8_vocab, r"vocab\.txt, row 3: not UTF-8 text: byte 0xe9"),
    ("tokenizer-non-utf8", _non_utf8_tokenizer, r"tokenizer\.json, row \d+: not UTF-8 text: byte 0xff"),
    (
        "reader-option-read-split",
        lambda c: read_split("msvd-qa", c.tmp, "val", foo="bar"),
        r"msvd-qa reader has no option 'foo'",
    ),
    (
        "stats-option-unknown",
        lambda c: c.data_cli(
            "stats",
            "--dataset",
            "how2qa",
            "--root",
            c.how2qa([HOW2QA_ROW.format(i=1)]),
            "--option",
            "foo=bar",
        ),
        r"how2qa reader has no option 'foo'; known options: form, seed",
    ),
    (
        "stats-empty-how2qa",
        lambda c: c.data_cli(
            "stats", "--dataset", "how2qa", "--root", c.how2qa([]), "--option", "video_layout=full"
        ),
        r"how2qa val split has no questions: .*how2QA_val_release\.csv holds none",
    ),
    (
        "stats-empty-msvd",
        lambda c: c.data_cli("stats", "--dataset", "msvd-qa", "--root", c.msvd([]), "--split", "val"),
        r"msvd-qa val split has no questions: .*val_qa\.json holds none",
    ),
    (
        "train-empty-how2qa-val",
        lambda c: _train_with_empty_eval(c, "how2qa"),
        r"data\.eval_splits: how2qa val split has no questions: .*how2QA_val_release\.csv holds none",
    ),
    (
        "train-empty-msvd-val",
        lambda c: _train_with_empty_eval(c, "msvd-qa"),
        r"data\.eval_splits: msvd-qa val split has no questions: .*val_qa\.json holds none",
    ),
    (
        "train-every-row-skipped",
        _train_with_all_rows_skipped,
        r"msvd-qa val split has no questions: every row of .*val_qa\.json was skipped \(1 rows\)",
    ),
    (
        "filter-missing-folder",
        lambda c: c.data_cli("filter", "--videos", c.tmp / "nowhere", "--manifest", c.tmp / "m.csv"),
        r"filter: video folder not found: .*nowhere",
    ),
    (
        "synth-scale-zero",
        lambda c: c.data_cli("synth", "--out", c.tmp / "s", "--scale", "0"),
        r"--scale must be > 0, got 0",
    ),
    (
        "synth-scale-negative",
        lambda c: c.data_cli("synth", "--out", c.tmp / "s", "--scale", "-2"),
        r"--scale must be > 0",
    ),
    (
        "synth-scale-nan",
        lambda c: c.data_cli("synth", "--out", c.tmp / "s", "--scale", "nan"),
        r"--scale must be > 0, got nan",
    ),
    (
        "resize-absurd",
        lambda c: read_frames(
            next((c.synthetic / "msvd-qa" / "videos").glob("*.mp4")), [0], size=(100000, 100000)
        ),
        r"resize to 100000x100000 is absurd",
    ),
    (
        "disk-full",
        _full_disk,
        r"cannot write .*step-000000003\.tmp-\d+-[0-9a-f]{8}/weights\.safetensors: .*No space left on device",
    ),
]


@pytest.mark.parametrize(("action", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_its_source(
    synthetic_root, tmp_path, capsys, monkeypatch, action, message
):
    ctx = Ctx(tmp_path, synthetic_root, capsys, monkeypatch)
    try:
        rc = action(ctx)
    except Exception as e:  # noqa: BLE001 - the message is what is checked
        text = str(e)
    else:
        # a command-line entry point: a non-zero exit and the message on stderr
        assert isinstance(rc, int) and rc != 0, f"accepted silently (returned {rc!r})"
        text = capsys.readouterr().err
    assert re.search(message, text, flags=re.MULTILINE), text


def test_the_table_has_at_least_25_cases():
    assert len({c[0] for c in BAD_INPUTS}) == len(BAD_INPUTS) >= 25


# -- a diverged run ---------------------------------------------------------------------------------------
def _cli_overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [a for o in synthetic_overrides(root, "msvd-qa", out, *TINY, *extra) for a in ("--set", o)]


@pytest.mark.parametrize("grad_clip", ["1.0", "null"])
def test_a_diverged_run_stops_with_a_clear_error_and_no_model(synthetic_root, tmp_path, capsys, grad_clip):
    out = tmp_path / "run"
    rc = main(_cli_overrides(synthetic_root, out, "optim.lr=1e6", "optim.warmup_ratio=0",
                             f"optim.grad_clip={grad_clip}", "run.checkpoint_every=1"))  # fmt: skip
    err = capsys.readouterr().err
    assert rc == EXIT_DIVERGED
    assert re.search(
        r"training diverged at step \d+ \(epoch 1, task msvd-qa\): loss \S+, gradient norm", err
    ), err
    assert not (out / "model").exists() and not (out / "metrics.json").exists()
    assert not (out / "objective.safetensors").exists()
    # every checkpoint written before the divergence holds finite weights
    for c in ckpt.list_checkpoints(out / "checkpoints"):
        weights, _, _ = ckpt.load_checkpoint(c)
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), c.name


def test_a_diverged_run_exits_non_zero_as_a_process(synthetic_root, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "siasamrea.training",
        *_cli_overrides(synthetic_root, tmp_path / "run", "optim.lr=1e6"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == EXIT_DIVERGED, proc.stderr[-2000:]
    assert "training diverged" in proc.stderr and "Traceback" not in proc.stderr


def test_config_errors_exit_2_not_3(tmp_path, synthetic_root, capsys):
    ctx = Ctx(tmp_path, synthetic_root, capsys, None)
    assert ctx.train_cli("optim.lr=.inf") == EXIT_CONFIG


# -- restarts: no stale rows, no leftover temporary folders -------------------------------------------------
def _log_steps(out: Path) -> list[int]:
    with open(out / "log.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_restart_without_a_checkpoint_does_not_append_to_old_logs(synthetic_root, tmp_path):
    out = tmp_path / "run"
    overrides = synthetic_overrides(synthetic_root, "msvd-qa", out, *TINY)
    # killed before its first checkpoint (epoch ends only): log rows, no checkpoint
    assert train(load_config(None, [*overrides, "run.max_steps=3"])) == {}
    assert _log_steps(out) == [1, 2, 3] and not ckpt.list_checkpoints(out / "checkpoints")
    (out / "epochs.csv").write_text("epoch,step\n1,6\n")  # and an evaluation written by an older attempt
    (out / "metrics.json").write_text("{}")
    (out / "instrument.json").write_text("{}")  # and an older attempt's conditions and analysis snapshots
    (out / "analysis").mkdir()
    (out / "analysis" / "epoch-1.json").write_text("{}")
    result = train(load_config(None, [*overrides, "run.max_steps=4"]))
    assert result == {} and _log_steps(out) == [1, 2, 3, 4]  # not 1, 2, 3, 1, 2, 3, 4
    for name in ("epochs.csv", "metrics.json", "instrument.json", "analysis"):
        assert not (out / name).exists(), name


def test_a_restart_whose_checkpoints_are_all_corrupt_starts_clean(synthetic_root, tmp_path):
    out = tmp_path / "run"
    overrides = synthetic_overrides(synthetic_root, "msvd-qa", out, *TINY, "run.checkpoint_every=2")
    first = train(load_config(None, overrides))
    steps = first["steps"]
    rows_before = (out / "epochs.csv").read_text()
    for c in ckpt.list_checkpoints(out / "checkpoints"):
        (c / ckpt.STATE).write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        second = train(load_config(None, overrides))
    assert second["steps"] == steps and _log_steps(out) == list(range(1, steps + 1))
    assert (out / "epochs.csv").read_text() == rows_before  # two epochs, once each


def test_leftover_temporary_folders_of_dead_processes_are_removed(synthetic_root, tmp_path):
    out = tmp_path / "run"
    dead, alive = _dead_pid(), __import__("os").getpid()
    leftovers = out / "checkpoints" / f".step-000000004.tmp-{dead}"
    live = out / "checkpoints" / f".step-000000002.tmp-{alive}"  # a save in progress: not touched
    for d in (leftovers, live):
        d.mkdir(parents=True)
        (d / ckpt.WEIGHTS).write_bytes(b"partial")
    train(load_config(None, synthetic_overrides(synthetic_root, "msvd-qa", out, *TINY, "run.max_steps=1")))
    assert not leftovers.exists() and live.exists()

    videos = sorted((synthetic_root / "msvd-qa" / "videos").glob("*.mp4"))[:2]
    cache = tmp_path / "cache"
    stale = tmp_path / f".cache.tmp-{dead}"
    other = tmp_path / f".other.tmp-{dead}"  # another target's temporary folder: not this build's business
    stale.mkdir()
    other.mkdir()
    build_frame_cache(videos, cache, 16)
    assert not stale.exists() and other.exists() and (cache / "index.json").is_file()
