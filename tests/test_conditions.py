"""The instrument's evaluation conditions (siasamrea.training.conditions, ``eval.conditions``) and its table.

A baseline trained briefly on the session's synthetic MSVD-QA-like set is evaluated by the engine under every
condition; each condition's predictions are recomputed here from the saved model, with frames, clips and
evidence read independently of the engine: black frames, a clip spread over the video's longest core
evidence range, and the mean of the logits of the anchor and the clips one, two, ... frames after it.
"""

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import synthetic_overrides

from siasamrea.analysis import floors, instrument
from siasamrea.analysis.results import Results, RunRef, run_rows
from siasamrea.core.choices import TaskKind
from siasamrea.data.frames import CachedFrames
from siasamrea.data.records import QARecord
from siasamrea.data.tokenization import load_tokenizer
from siasamrea.method.config import ConfigError, load_config
from siasamrea.method.model import ClipBertVQA
from siasamrea.training.build import load_tasks
from siasamrea.training.cli import train
from siasamrea.training.conditions import oracle_clip
from siasamrea.training.evidence import Evidence

FRAMES = 4
CLIPS = 3


@pytest.fixture(scope="module")
def run(synthetic_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conditions") / "msvd-qa-baseline-s0"
    overrides = synthetic_overrides(
        synthetic_root, "msvd-qa", out,
        "method.variant=baseline", f"method.frames_per_clip={FRAMES}", f"method.num_clips={CLIPS}",
        "optim.epochs=2", "optim.lr=2e-3", "run.analysis_videos=0",
        'eval.conditions=["blank", "oracle", "multi_clip"]',
    )  # fmt: skip
    train(load_config(None, overrides))
    return out


def _siamese(anchor: list[int], clips: int) -> torch.Tensor:
    """The anchor and the clips 1, 2, ... frames after it (Sec. 3.2; the default interval leaves room)."""
    return torch.tensor([[f + k for f in anchor] for k in range(clips)])


def _evidence(path: Path) -> dict[str, dict]:
    return {r["video_id"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def test_each_condition_is_what_it_says(run, synthetic_root):
    inst = json.loads((run / "instrument.json").read_text())
    entry = inst["sets"]["msvd-qa/test"]
    last = json.loads((run / "predictions" / "msvd-qa_test_last.json").read_text())["rows"]
    assert entry["anchor"]["pred"] == [r["pred"] for r in last]  # the anchor condition is the run's own
    assert entry["qid"] == [r["qid"] for r in last]

    cfg = load_config(run / "config.yaml")
    (task,) = load_tasks(cfg)
    records = task.eval["test"]
    frames = CachedFrames(synthetic_root / "cache32" / "msvd-qa")
    tok = load_tokenizer(synthetic_root / "tokenizer")
    model = ClipBertVQA.from_pretrained(run / "model").eval()
    evidence = _evidence(synthetic_root / "msvd-qa" / "evidence.jsonl")
    anchors = [torch.tensor([r["anchor"]]) for r in last]

    def predict(clips: list[torch.Tensor], blank: bool = False) -> list[int]:
        out = []
        with torch.no_grad():
            for i, r in enumerate(records):
                pixels = frames.read(r.video_path, clips[i])[None]
                if blank:
                    pixels = torch.zeros_like(pixels)
                enc = tok([r.question], return_tensors="pt")
                logits = model(pixels, enc["input_ids"], enc["attention_mask"], "msvd-qa").logits  # [1, N, K]
                out.append(int(logits.mean(1).argmax(-1)))
        return out

    oracle = []
    for r in records:
        core = evidence[r.video_id]["core"]
        lo, hi = max(core, key=lambda c: c[1] - c[0])
        oracle.append(torch.tensor([[round(lo + (hi - lo) * k / (FRAMES - 1)) for k in range(FRAMES)]]))
    siamese = [_siamese(r["anchor"], CLIPS) for r in last]
    # the frames each condition showed, recomputed here
    assert entry["anchor"]["clips"] == entry["blank"]["clips"] == [[a] for a in (r["anchor"] for r in last)]
    assert entry["oracle"]["clips"] == [c.tolist() for c in oracle]
    assert entry["multi_clip"]["clips"] == [c.tolist() for c in siamese]
    shown = zip(entry["multi_clip"]["clips"], records, strict=True)
    assert all(max(c[-1]) < frames.num_frames(r.video_path) for c, r in shown)
    assert entry["oracle"]["clips"] != entry["anchor"]["clips"]
    assert entry["blank"]["pred"] != entry["anchor"]["pred"]  # black frames change some answers
    assert predict(anchors) == entry["anchor"]["pred"]
    assert predict(anchors, blank=True) == entry["blank"]["pred"]
    assert predict(oracle) == entry["oracle"]["pred"]
    assert predict(siamese) == entry["multi_clip"]["pred"]
    assert entry["oracle_without_evidence"] == 0
    for condition in ("anchor", "blank", "oracle", "multi_clip"):
        hits = [p == t for p, t in zip(entry[condition]["pred"], entry["target"], strict=True)]
        assert entry[condition]["metrics"]["acc"] == pytest.approx(sum(hits) / len(hits))
    # black frames: the prediction can depend on the question only
    by_question = {}
    for r, p in zip(records, entry["blank"]["pred"], strict=True):
        assert by_question.setdefault(r.question, p) == p


def test_the_table_reads_the_runs(run, synthetic_root):
    ref = RunRef("finetune", "msvd-qa", "baseline", 0, str(run))
    metrics = json.loads((run / "metrics.json").read_text())
    results = Results(pd.DataFrame(run_rows(ref, metrics)), [ref])
    params = {
        "name": "test",
        "data": {"source": "synthetic", "datasets": {"msvd-qa": {"eval_splits": ["val", "test"]}}},
        "finetune": {"datasets": {"msvd-qa": {}}, "variants": {"baseline": {}}},
    }
    (row,) = instrument.instrument_rows(params, results, root="/")
    entry = json.loads((run / "instrument.json").read_text())["sets"]["msvd-qa/test"]
    last = json.loads((run / "predictions" / "msvd-qa_test_last.json").read_text())["rows"]
    evidence = _evidence(synthetic_root / "msvd-qa" / "evidence.jsonl")
    covered = [
        any(a <= f <= b for f in r["anchor"] for a, b in evidence[r["video_id"]]["core"]) for r in last
    ]
    correct = {c: [p == t for p, t in zip(entry[c]["pred"], entry["target"], strict=True)]
               for c in ("anchor", "blank", "oracle", "multi_clip")}  # fmt: skip
    assert row["questions"] == len(last)
    assert row["anchor coverage"].mean == pytest.approx(100 * sum(covered) / len(covered))
    assert row["baseline"].mean == pytest.approx(100 * sum(correct["anchor"]) / len(last))
    assert row["text only"].mean == pytest.approx(100 * sum(correct["blank"]) / len(last))
    ceiling = sum(correct["oracle"][i] if c else correct["blank"][i] for i, c in enumerate(covered)) / len(
        last
    )
    assert row["anchor ceiling"].mean == pytest.approx(100 * ceiling)
    on = [correct["anchor"][i] for i, c in enumerate(covered) if c]
    assert row["baseline, anchor shows evidence"].mean == pytest.approx(100 * sum(on) / len(on))
    (control,) = [
        c for c in instrument.positive_controls(params, results, root="/") if "multi" in c["control"]
    ]
    gap = 100 * (sum(correct["multi_clip"]) - sum(correct["anchor"])) / len(last)
    assert control["gap"].mean == pytest.approx(gap)


def test_oracle_clip_stays_on_the_longest_core_range():
    ev = Evidence(num_frames=100, core=((10, 12), (40, 49)), faint=((38, 39),))
    assert oracle_clip(ev, 4).tolist() == [[40, 43, 46, 49]]
    assert oracle_clip(Evidence(50, ((7, 8),)), 4).tolist() == [[7, 7, 8, 8]]  # short: repeats, never leaves
    with pytest.raises(ValueError, match="no core"):
        oracle_clip(Evidence(50, ()), 4)


def _record(answer: str, qtype: str, candidates=(), question: str = "?") -> QARecord:
    kind = TaskKind.MULTIPLE_CHOICE if candidates else TaskKind.OPEN_ENDED
    return QARecord(dataset="d", task="d", kind=kind, split="x", qid="q", video_id="v",
                    video_path=Path("v.mp4"), question=question, answer=answer, candidates=list(candidates),
                    answer_index=list(candidates).index(answer) if candidates else None,
                    question_type=qtype)  # fmt: skip


def test_answer_prior_is_the_most_frequent_training_answer_of_the_type():
    train = [_record("red", "what")] * 3 + [_record("blue", "what")] + [_record("left", "where")] * 2
    test = [
        _record("red", "what"),
        _record("blue", "what"),
        _record("left", "where"),
        _record("top", "where"),
    ]
    assert floors.answer_prior(train, test, "open_ended") == pytest.approx(2 / 4)
    mc = [_record("a", "x", "abcd"), _record("b", "x", "ab")]
    assert floors.answer_prior([], mc, "multiple_choice") == pytest.approx((1 / 4 + 1 / 2) / 2)
    # count: the training answers' mean (here 2) as the prediction
    counts = [_record(str(k), None) for k in (1, 1, 4)]
    assert floors.mean_predictor_mse(counts, [_record("2", None), _record("5", None)]) == pytest.approx(
        (0**2 + 3**2) / 2
    )


def test_question_prior_reads_the_first_words_where_the_type_lumps_questions_together():
    # MSVD-QA's type is the first word: "what color" and "what shape" are both "what"
    train = (
        [_record("square", "what", question="what shape is the red thing ?")] * 3
        + [_record("red", "what", question="what color is the square ?")] * 2
        + [_record("blue", "what", question="what color is the cross ?")]
    )
    test = [
        _record("red", "what", question="What color is the bar ?"),  # case does not matter
        _record("square", "what", question="what shape is the blue thing ?"),
        _record("red", "what", question="what is this ?"),  # unseen prefix: the type's answer, "square"
    ]
    assert floors.answer_prior(train, test, "open_ended") == pytest.approx(1 / 3)  # "square" for all
    assert floors.question_prior(train, test, "open_ended") == pytest.approx(2 / 3)
    assert floors.question_prior(train, test, "open_ended", words=1) == pytest.approx(1 / 3)
    mc = [_record("a", "x", "abcd")]
    assert floors.question_prior([], mc, "multiple_choice") == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="words must be at least 1"):
        floors.question_prior(train, test, "open_ended", words=0)


REAL_TGIF = Path(__file__).parent / "data" / "real_excerpts" / "tgif-qa"


def test_floors_of_a_release_from_its_annotation_files(tmp_path, capsys):
    # the real TGIF-QA excerpt: action (5 candidates) has train and test; the other tasks only test
    found = floors.dataset_floors("tgif-qa", REAL_TGIF, "test", val_fraction=0.0)
    assert found["action"]["kind"] == "multiple_choice" and found["action"]["questions"] == 5
    assert found["action"]["answer prior"] == pytest.approx(1 / 5)
    assert found["count"] == {"missing": "no train questions"}
    # count answers of our own: the training mean is 3, the test errors 0 and 2
    header = "gif_name\tquestion\tanswer\tvid_id\tkey\n"
    rows = lambda answers, prefix: "".join(  # noqa: E731
        f"{prefix}{i}\thow many times does the man nod ?\t{a}\tCOUNT{i}\t{i}\n" for i, a in enumerate(answers)
    )
    (tmp_path / "Train_count_question.csv").write_text(header + rows([1, 2, 3, 6], "tr"))
    (tmp_path / "Test_count_question.csv").write_text(header + rows([3, 5], "te"))
    got = floors.dataset_floors("tgif-qa", tmp_path, val_fraction=0.0)["count"]
    assert got["training mean MSE"] == pytest.approx((0**2 + 2**2) / 2)
    assert got["skipped"] == {"train": 0, "test": 0}
    assert floors.main(["--dataset", "tgif-qa", "--root", str(tmp_path), "--option", "val_fraction=0"]) == 0
    assert "count (count, 2 test questions): training mean MSE 2.000" in capsys.readouterr().out
    with pytest.raises(ValueError, match="split and reference are both 'test'"):
        floors.dataset_floors("tgif-qa", tmp_path, "test", "test")
    assert floors.main(["--dataset", "tgif-qa", "--root", str(tmp_path / "nowhere")]) == 1
    assert "annotation folder not found" in capsys.readouterr().err


def test_the_msvd_like_text_only_ceiling_is_the_question_prior_not_the_type_prior(synthetic_root):
    """The synthetic MSVD-QA-like set asks five kinds of question; from the question's first two words a
    blind model can at best pick the most common answer of its kind. Computed here from the generator's
    pools: colour 1/8, shape 1/4, who 1/4, how many 1/3, where 1/4 — against the type prior, which for the
    type "what" (colour and shape lumped) can only be right on one of the two."""
    tasks = {
        t.name: t for t in load_tasks(load_config(None, synthetic_overrides(synthetic_root, "msvd-qa", "r")))
    }
    t = tasks["msvd-qa"]
    q = floors.question_prior(t.train, t.eval["test"], t.kind)
    a = floors.answer_prior(t.train, t.eval["test"], t.kind)
    share = Counter(" ".join(r.question.split()[:2]) for r in t.eval["test"])
    n = sum(share.values())
    quarter = share["what shape"] + share["who appears"] + share["where does"]
    expected = (share["what color"] / 8 + quarter / 4 + share["how many"] / 3) / n
    assert set(share) == {"what color", "what shape", "who appears", "where does", "how many"}
    assert abs(q - expected) < 0.06  # sampling noise of a few hundred test questions
    assert q > a  # the type prior is blind to the colour/shape split the words make


def test_unknown_conditions_and_an_oracle_without_evidence_are_refused(synthetic_root, tmp_path):
    base = synthetic_overrides(
        synthetic_root, "msvd-qa", tmp_path / "r", "optim.epochs=1", "data.train_limit=8"
    )
    with pytest.raises(ConfigError, match="eval.conditions"):
        load_config(None, [*base, 'eval.conditions=["psychic"]'])
    no_evidence = [o for o in base if not o.startswith("data.evidence")]
    with pytest.raises(ConfigError, match="data.evidence"):
        load_config(None, [*no_evidence, 'eval.conditions=["oracle"]'])
