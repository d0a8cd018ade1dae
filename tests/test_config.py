"""The run configuration: bad values fail before anything trains, naming the key; YAML + ``--set`` layering;
the resolved ``config.yaml`` of a run loads back to the same configuration."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import synthetic_overrides

from siasamrea.method.config import (
    Config,
    ConfigError,
    MethodConfig,
    config_from_dict,
    dump_config,
    iter_keys,
    key_bounds,
    load_config,
)
from siasamrea.training.cli import main, train


@pytest.fixture
def paths(tmp_path) -> list[str]:
    """Overrides naming an existing data root and tokenizer directory (all that validation looks at)."""
    (tmp_path / "ann").mkdir()
    (tmp_path / "tok").mkdir()
    return [f"data.root={tmp_path / 'ann'}", f"data.tokenizer={tmp_path / 'tok'}"]


def test_defaults_with_paths_are_valid(paths):
    cfg = load_config(None, paths)
    assert cfg == Config(data=cfg.data)  # nothing but the two paths differs from the defaults
    assert cfg.method.variant == "siasamrea" and cfg.optim.lr == 5e-4


BAD = [
    # unknown keys, top-level and nested
    ("bogus=1", "bogus"),
    ("optim.bogus=1", "optim.bogus"),
    ("model.text_dropout=0.1", "model.text_dropout"),
    ("optim.lr.inner=1", "optim.lr"),
    ("optim=3", "optim"),
    # wrong types
    ("optim.lr=abc", "optim.lr"),
    ("method.num_clips=2.5", "method.num_clips"),
    ("optim.epochs=true", "optim.epochs"),
    ("optim.epochs=3.0", "optim.epochs"),
    ("run.bf16=maybe", "run.bf16"),
    ("data.eval_splits=test", "data.eval_splits"),
    ("optim.betas=[0.9, fast]", "optim.betas"),
    ("model.text=[1, 2]", "model.text"),
    ("data.root=", "data.root"),
    ("optim.lr=true", "optim.lr"),  # a bool is not a number
    ("optim.lr='0.5'", "optim.lr"),  # quoted text is not a number (only YAML 1.1's 5e-4)
    ("optim.epochs='3'", "optim.epochs"),
    ("model.freeze_at=true", "model.freeze_at"),  # not the choice 1
    ("model.freeze_at=1.0", "model.freeze_at"),
    ("method.variant=5", "method.variant"),
    ("method.frames_per_clip=true", "method.frames_per_clip"),
    ("eval.conditions=[blank, 5]", "eval.conditions"),  # a list is named whole, not its element
    # impossible clip counts
    ("method.num_clips=1", "method.num_clips"),  # siasamrea needs the anchor and a siamese clip
    ("method.num_clips=0", "method.num_clips"),
    ("method.num_clips=-3", "method.num_clips"),
    ("method.frames_per_clip=0", "method.frames_per_clip"),
    ("method.frames_per_clip=99", "method.frames_per_clip"),
    ("method.frames_per_clip=many", "method.frames_per_clip"),
    ("eval.num_clips=0", "eval.num_clips"),
    # unknown choices
    ("method.variant=siamese", "method.variant"),
    ("eval.multi_clip=median", "eval.multi_clip"),
    ("method.offsets=before", "method.offsets"),
    ("data.dataset=tgif", "data.dataset"),
    ('data.tasks=["count", "counting"]', "data.tasks"),
    ("run.device=tpu", "run.device"),
    # ranges
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=-1e-3", "optim.lr"),
    ("optim.epochs=0", "optim.epochs"),
    ("optim.batch_size=0", "optim.batch_size"),
    ("optim.warmup_ratio=1.0", "optim.warmup_ratio"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("optim.betas=[0.9, 1.5]", "optim.betas"),
    ("optim.grad_clip=-1.0", "optim.grad_clip"),
    ("method.omega=1.5", "method.omega"),
    ("method.temperature=0", "method.temperature"),
    ("eval.every_epochs=0", "eval.every_epochs"),
    ("eval.batch_size=0", "eval.batch_size"),
    ("run.log_every=0", "run.log_every"),
    ("run.checkpoint_every=-2", "run.checkpoint_every"),
    ("data.train_limit=-5", "data.train_limit"),
    ("data.frame_size=8", "data.frame_size"),
    # an override that is not YAML, or not key=value
    ("optim.betas=[0.9, 0.98", "optim.betas"),
    ("method.num_clips", "method.num_clips"),
]


@pytest.mark.parametrize(("override", "key"), BAD, ids=[b[0] for b in BAD])
def test_bad_value_names_the_key(paths, override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [*paths, override])
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}:")


def test_variant_specific_clip_counts(paths):
    # one clip is fine for the baseline (it trains on the anchor alone) and wrong for every siamese variant
    assert load_config(None, [*paths, "method.variant=baseline", "method.num_clips=1"]).train_clips == 1
    for variant in ("siasamrea", "skr_average", "anchor_copies", "all_clips"):
        with pytest.raises(ConfigError, match=r"^method\.num_clips:"):
            load_config(None, [*paths, f"method.variant={variant}", "method.num_clips=1"])
    with pytest.raises(ConfigError, match=r"^method\.num_clips:"):
        load_config(None, [*paths, "method.variant=baseline", "method.num_clips=0"])
    assert load_config(None, [*paths, "method.frames_per_clip=auto"]).method.frames_per_clip == "auto"
    assert load_config(None, [*paths, "method.frames_per_clip=16"]).method.frames_per_clip == 16


@pytest.mark.parametrize("key", ["model.init_from", "model.vision_checkpoint", "model.text_checkpoint"])
def test_missing_checkpoint_path(paths, tmp_path, key):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ConfigError, match=rf"^{key}: .*nowhere"):
        load_config(None, [*paths, f"{key}={missing}"])


def test_missing_data_root_and_tokenizer(paths, tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.root: "):
        load_config(None, [paths[1], f"data.root={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match=r"^data\.tokenizer: "):
        load_config(None, [paths[0], f"data.tokenizer={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match=r"^data\.filter_manifest: "):
        load_config(None, [*paths, f"data.filter_manifest={tmp_path / 'manifest.csv'}"])


def test_yaml_file_and_set_precedence(paths, tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text(
        yaml.safe_dump({
            "method": {"num_clips": 5, "alpha": 0.5},
            "optim": {"lr": "1e-3", "epochs": 3},
            "model": {"text": {"hidden_dropout_prob": 0.0}},
        })
    )  # fmt: skip
    cfg = load_config(f, [*paths, "optim.lr=0.002", "method.alpha=2", "method.alpha=0.25",
                          'model.text={"attention_probs_dropout_prob": 0.0}'])  # fmt: skip
    assert cfg.optim.lr == 0.002  # --set beats the file
    assert cfg.method.alpha == 0.25 and isinstance(cfg.method.alpha, float)  # the last --set wins
    assert cfg.method.num_clips == 5 and cfg.optim.epochs == 3  # the file beats the defaults
    assert cfg.optim.batch_size == 8 and cfg.method.variant == "siasamrea"  # defaults for the rest
    # mappings merge key by key
    assert cfg.model.text == {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    assert load_config(f, paths).optim.lr == 1e-3  # "1e-3" in a YAML file is a number, not a string

    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  num_clipz: 3\n")
    with pytest.raises(ConfigError, match=r"^method\.num_clipz: unknown key"):
        load_config(bad, paths)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "absent.yaml", paths)


def test_set_values_are_yaml(paths):
    cfg = load_config(None, [
        *paths, "run.bf16=false", "run.progress=true", "model.freeze_bn=true", "optim.grad_clip=null",
        "data.eval_splits=[val, test]", "optim.lr=5e-4", "optim.weight_decay=1E-2", "method.omega=1",
        'data.reader={"ext": "mp4"}', "optim.betas=[0.9, 9.9e-1]", "run.out_dir=runs/a=b",
    ])  # fmt: skip
    assert cfg.run.bf16 is False and cfg.run.progress is True and cfg.model.freeze_bn is True
    assert cfg.optim.grad_clip is None
    assert cfg.data.eval_splits == ["val", "test"]
    assert cfg.optim.lr == 5e-4 and cfg.optim.weight_decay == 0.01 and cfg.method.omega == 1.0
    assert isinstance(cfg.method.omega, float)
    assert cfg.data.reader == {"ext": "mp4"}
    assert cfg.optim.betas == [0.9, 0.99]
    assert cfg.run.out_dir == "runs/a=b"  # only the first "=" separates key and value
    # a number where a string is expected stays a type error, and text where a number is expected too
    with pytest.raises(ConfigError, match=r"^run\.out_dir:"):
        load_config(None, [*paths, "run.out_dir=5"])
    with pytest.raises(ConfigError, match=r"^optim\.lr:"):
        load_config(None, [*paths, "optim.lr=5e-4x"])


def test_strict_types_and_coercion(paths, tmp_path):
    # an integer where a float is expected becomes a float, in a list too; YAML 1.1's "5e-4" text as well
    cfg = load_config(None, [*paths, "method.alpha=2", "optim.betas=[0, '9e-1']", "optim.grad_clip=3"])
    assert cfg.method.alpha == 2.0 and isinstance(cfg.method.alpha, float)
    assert cfg.optim.betas == [0.0, 0.9] and all(isinstance(b, float) for b in cfg.optim.betas)
    assert isinstance(cfg.optim.grad_clip, float)
    for override, message in [
        ("optim.lr=true", r"^optim\.lr: expected float, got True \(bool\)$"),
        ("optim.betas=[0.9, fast]", r"^optim\.betas: expected list\[float\], got \[0\.9, 'fast'\] \(list\)$"),
        ("method.variant=5", r"^method\.variant: expected str, got 5 \(int\)$"),
        ("model.freeze_at=3", r"^model\.freeze_at: must be one of \[0, 1, 2\], got 3$"),
        ("method.alpha=-1", r"^method\.alpha: must be >= 0, got -1\.0$"),
        ("optim=3", r"^optim: expected a mapping, got int$"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, [*paths, override])
    # a null or empty section takes the defaults
    f = tmp_path / "sections.yaml"
    f.write_text("optim:\nmethod: {}\n")
    assert load_config(f, paths) == load_config(None, paths)
    # with several problems: types (in input order, unknown keys first) before ranges (in key order)
    with pytest.raises(ConfigError, match=r"^method\.bogus: unknown key"):
        load_config(None, [*paths, "method.num_clips=0", "method.bogus=1"])
    with pytest.raises(ConfigError, match=r"^optim\.lr: expected float"):
        load_config(None, [*paths, "method.variant=x", "optim.lr=abc"])
    with pytest.raises(ConfigError, match=r"^method\.num_clips: must be"):
        load_config(None, [*paths, "method.omega=2", "method.num_clips=0"])


def test_sections_copy_and_validate_after_assignment(paths):
    cfg = load_config(None, paths)
    other = cfg.model_copy(update={"run": cfg.run.model_copy(update={"threads": 3})})
    assert other.run.threads == 3 and cfg.run.threads is None and other.method is cfg.method
    assert Config(method=MethodConfig(num_clips=3)).method.num_clips == 3
    cfg.method.num_clips = 0  # assignment is not checked; validate() checks every key again
    with pytest.raises(ConfigError, match=r"^method\.num_clips: must be in \[1, 64\], got 0$"):
        config_from_dict(cfg.to_dict())


def test_dict_overrides_and_round_trip_of_dump(paths, tmp_path):
    cfg = load_config(None, [*paths, "method.num_clips=4", "optim.lr=1e-4"])
    assert config_from_dict(cfg.to_dict()) == cfg
    assert (
        load_config(None, {"method": {"num_clips": 4}, "optim": {"lr": 1e-4}, "data": cfg.to_dict()["data"]})
        == cfg
    )
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


# -- the CLI ---------------------------------------------------------------------------------------------
def test_cli_config_error_exits_2_before_creating_anything(tmp_path, capsys, paths):
    out = tmp_path / "run"
    cases = [("method.num_clips=1", "method.num_clips"), ("optim.lr=abc", "optim.lr"),
             ("optim.bogus=3", "optim.bogus"), ("eval.multi_clip=median", "eval.multi_clip")]  # fmt: skip
    for override, key in cases:
        code = main(
            ["--set", f"run.out_dir={out}", *(a for p in paths for a in ("--set", p)), "--set", override]
        )
        err = capsys.readouterr().err
        assert code == 2
        assert f"config error: {key}:" in err
        assert not out.exists()
    code = main(["--config", str(tmp_path / "absent.yaml"), "--set", f"run.out_dir={out}"])
    assert code == 2 and "config file not found" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [("method.frames_per_clip=many", "method.frames_per_clip"), ("run.nope=1", "run.nope")],
)
def test_cli_subprocess_exit_code(tmp_path, paths, override, key):
    out = tmp_path / "run"
    args = [a for p in [*paths, f"run.out_dir={out}", override] for a in ("--set", p)]
    proc = subprocess.run([sys.executable, "-m", "siasamrea.training", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"config error: {key}:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_resolved_config_of_a_run_loads_back(synthetic_root, tmp_path):
    out = tmp_path / "run"
    overrides = synthetic_overrides(synthetic_root, "msvd-qa", out, "method.num_clips=3", "optim.lr=3e-4",
                                    'model.text={"hidden_dropout_prob": 0.05}',
                                    "run.max_steps=0")  # fmt: skip
    cfg = load_config(None, overrides)
    assert train(cfg) == {}  # stopped before the first step: nothing trained, the configuration recorded
    saved = Path(out / "config.yaml")
    assert saved.is_file()
    back = load_config(saved)
    assert back == cfg
    assert back.optim.lr == 3e-4 and back.model.text == {"hidden_dropout_prob": 0.05}
    assert back.data.reader == {"ext": "mp4"} and back.method.num_clips == 3


def test_help_lists_every_key_with_type_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    defaults = Config().to_dict()
    keys = list(iter_keys())
    assert len(keys) == sum(len(v) for v in defaults.values())  # every key of every section
    for name, f, _ in keys:
        section, key = name.split(".")
        m = re.search(rf"^  {re.escape(name)}: (\S.*) = (.+)\n      (\S.*)$", text, flags=re.MULTILINE)
        assert m, f"{name} is not in --help"
        assert json.loads(m[2]) == defaults[section][key], name
        assert f.description and m[3].startswith(f.description), name
    assert re.search(r"^  method\.omega: float = 0\.5\n      .*\(in \[0, 1\]\)$", text, flags=re.MULTILINE)
    assert re.search(r"^  optim\.lr: float = 0\.0005\n      .*\(> 0\)$", text, flags=re.MULTILINE)


def _outside(meta: dict, integer: bool):
    """A value just outside a key's declared range."""
    for bound, step in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
        if meta.get(bound) is not None:
            value = meta[bound] + step
            return int(value) if integer else float(value)
    return None


def test_the_ranges_help_prints_are_the_ones_validation_enforces(paths):
    checked = 0
    for name, f, tp in iter_keys():
        if not key_bounds(f):
            continue
        value = _outside(key_bounds(f), integer="float" not in str(tp))
        with pytest.raises(ConfigError, match=rf"^{re.escape(name)}: must be"):
            load_config(None, [*paths, f"{name}={value}"])
        checked += 1
    assert checked >= 25


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize(
    "key",
    [
        "optim.lr",
        "optim.weight_decay",
        "optim.grad_clip",
        "method.alpha",
        "method.omega",
        "method.temperature",
        "method.affinity_temperature",
    ],
)
def test_non_finite_numbers_are_refused(paths, key, value):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: must be a finite number"):
        load_config(None, [*paths, f"{key}={value}"])
