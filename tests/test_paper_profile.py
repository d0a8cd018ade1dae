"""The `paper` profile validates: every training stage's configuration builds and passes validation when the
folders and files it names exist (stubs here: the real releases and checkpoints are not on this machine), and
a missing one is refused naming its key."""

from pathlib import Path

import pytest

from siasamrea.analysis.results import expected_runs
from siasamrea.method.config import ConfigError
from siasamrea.pipeline import stages
from siasamrea.pipeline.profiles import load_profile

REPO = Path(__file__).resolve().parents[1]


def _stage_instances(params: dict) -> list[tuple[str, str | None, str | None]]:
    out = [("init", None, None)]
    out += [("pretrain", None, v) for v in params["pretrain"]["variants"]]
    for ref in expected_runs(params, (*stages.FINETUNE_SECTIONS, stages.SWEEP)):
        out.append((ref.section, ref.dataset, ref.variant))
    return sorted(set(out), key=str)


def _stub(cfg) -> None:
    """Create every folder and file ``cfg`` names (relative to the working directory)."""
    for d in (cfg.data.root, cfg.data.tokenizer, cfg.model.text_checkpoint, cfg.model.vision_checkpoint,
              cfg.model.init_from):  # fmt: skip
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
    for f in (cfg.data.filter_manifest, cfg.model.clipbert_checkpoint):
        if f:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            Path(f).touch()
    if cfg.data.cache:
        Path(cfg.data.cache).mkdir(parents=True, exist_ok=True)
        (Path(cfg.data.cache) / "index.json").write_text(f'{{"frame_size": {cfg.data.frame_size}}}')


def test_every_stage_of_the_paper_profile_validates_with_its_folders_present(tmp_path, monkeypatch):
    params = load_profile("paper", REPO)
    monkeypatch.chdir(tmp_path)
    instances = _stage_instances(params)
    assert {s for s, _, _ in instances} >= {"init", "pretrain", "finetune", "ablations"}
    configs = []
    for stage, dataset, variant in instances:
        configs += stages.stage_configs(params, stage, dataset=dataset, variant=variant, validate=False)
    assert len(configs) >= 4 * 3 * 3  # four downstream datasets, three variants, three seeds at least
    for cfg in configs:
        _stub(cfg)
    validated = 0
    for stage, dataset, variant in instances:
        for cfg in stages.stage_configs(params, stage, dataset=dataset, variant=variant):
            assert cfg.data.frame_size == 448 and cfg.model.stem == "imagenet"
            assert "oracle" not in cfg.eval.conditions  # real data has no evidence ground truth
            validated += 1
    assert validated == len(configs)

    # a missing release or checkpoint is refused, naming its key
    Path(params["data"]["datasets"]["how2qa"]["root"]).rmdir()
    with pytest.raises(ConfigError, match="data.root"):
        stages.stage_configs(params, "finetune", dataset="how2qa", variant="baseline")
    Path(params["pretrain"]["config"]["model"]["clipbert_checkpoint"]).unlink()
    with pytest.raises(ConfigError, match="model.clipbert_checkpoint"):
        stages.stage_configs(params, "pretrain", variant="siasamrea")
