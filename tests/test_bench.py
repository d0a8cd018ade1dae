"""The benchmark (siasamrea.perf) measures the right things: the report's structure, and facts checked
independently of the benchmark's own code (an analytic parameter count, PyAV frame and keyframe counts,
the annotation file's question count). No timing thresholds: benchmarks measure speed, tests check
correctness."""

import json
import math

import av
import pytest
import torch
from safetensors.torch import load_file

from siasamrea.method.model import TINY_TEXT
from siasamrea.perf import format_table, names_only, profile, run_benchmark, write_report
from siasamrea.perf.__main__ import main
from siasamrea.perf.step import BENCH_VISION, StepBench, StepSetting
from siasamrea.perf.step_timing import reasoning_fn

# Every section at the smallest sizes that still exercise it.
TINY = dict(
    videos=1, warmup=0, repeats=2, reasoning_inner=2, reasoning_repeats=2, profile_steps=1,
    inference_repeats=2, inference_batches=(1, 2), real_videos=("carphone_pristine.mp4",),
    reencode_real=False, loading_repeats=1, loader_videos=1, loader_batches=3, msvd_train=2,
    memory_clips=(1, 2), memory_videos=1,
)  # fmt: skip
SECTIONS = ("training", "reasoning", "inference", "loading", "loader", "memory")
OE_CLIPS, MC_CLIPS = (1, 2, 5, 9, 13), (1, 9)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    before = torch.get_num_threads()
    report = run_benchmark(quick=True, threads=1, workdir=work, sections=SECTIONS, overrides=TINY, log=None)
    assert torch.get_num_threads() == before  # the benchmark restores the caller's thread count
    return report, work


# -- independent references ------------------------------------------------------------------------------
def analytic_params(vision: dict, text: dict, num_answers: int, max_grid: int = 16) -> int:
    """Parameters of ClipBertVQA counted by hand from the configs (ResNet basic blocks, BERT without
    pooler, visual embedding, ClipBERT's MLP head)."""
    conv = lambda i, o, k: i * o * k * k  # noqa: E731 (bias-free convolutions)
    bn = lambda c: 2 * c  # noqa: E731
    n = conv(3, vision["embedding_size"], 7) + bn(vision["embedding_size"])
    cin = vision["embedding_size"]
    for stage, (h, depth) in enumerate(zip(vision["hidden_sizes"], vision["depths"], strict=True)):
        for j in range(depth):
            i = cin if j == 0 else h
            stride = 2 if (j == 0 and (stage > 0 or vision["downsample_in_first_stage"])) else 1
            n += conv(i, h, 3) + bn(h) + conv(h, h, 3) + bn(h)
            if i != h or stride != 1:
                n += conv(i, h, 1) + bn(h)
        cin = h
    hid, inter = text["hidden_size"], text["intermediate_size"]
    bert = (text["vocab_size"] + text["max_position_embeddings"] + text["type_vocab_size"]) * hid + 2 * hid
    layer = 4 * (hid * hid + hid) + 2 * hid + (hid * inter + inter) + (inter * hid + hid) + 2 * hid
    bert += text["num_hidden_layers"] * layer
    visual = vision["hidden_sizes"][-1] * hid + hid + 2 * max_grid * hid
    head = (hid * 2 * hid + 2 * hid) + 2 * 2 * hid + (2 * hid * num_answers + num_answers)
    return n + bert + visual + head


def pyav_frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def pyav_keyframes(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(video=0) if p.size and p.is_keyframe)


def pyav_size(path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0].codec_context
        return [s.height, s.width]


# -- the report ------------------------------------------------------------------------------------------
def test_report_structure_and_json_round_trip(bench, tmp_path):
    report, _ = bench
    assert report["schema"] == 1 and report["quick"] is True
    m = report["machine"]
    assert m["cpu_model"] and m["cores_available"] >= 1 and m["torch"] == torch.__version__
    assert m["threads_requested"] == 1 and m["torch_num_threads"] == 1
    for section in SECTIONS:
        assert section in report, section
    assert "explore" not in report  # not in quick runs
    assert report["settings"]["videos"] == 1  # the overrides are recorded
    path = tmp_path / "bench.json"
    write_report(report, path)
    # the written report equals the returned one, with file names instead of this machine's paths
    assert json.loads(path.read_text()) == names_only(report)
    assert '"/' not in path.read_text()
    assert {f["path"] for f in json.loads(path.read_text())["loading"]["files"]} >= {"carphone_pristine.mp4"}
    table = format_table(report)
    for heading in ("training step", "SKG+SKR", "inference", "video loading", "data loader", "peak memory"):
        assert heading in table


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="unknown benchmark settings"):
        run_benchmark(quick=True, sections=(), overrides={"vidoes": 1}, log=None)
    assert set(TINY) <= set(profile(True))


# -- training and reasoning ------------------------------------------------------------------------------
def test_training_entries_cover_every_n(bench):
    entries = bench[0]["training"]
    oe = {e["num_clips"]: e for e in entries if e["task"] == "open_ended"}
    mc = {e["num_clips"]: e for e in entries if e["task"] == "multiple_choice"}
    assert sorted(oe) == list(OE_CLIPS) and sorted(mc) == list(MC_CLIPS)
    assert len(entries) == len(OE_CLIPS) + len(MC_CLIPS)
    for e in entries:
        assert e["variant"] == ("baseline" if e["num_clips"] == 1 else "siasamrea")
        assert e["step_seconds"]["median"] > 0 and e["step_seconds"]["n"] == TINY["repeats"]
        assert e["step_seconds"]["q1"] <= e["step_seconds"]["median"] <= e["step_seconds"]["q3"]
        assert e["frames_per_step"] == e["videos_per_step"] * e["num_clips"] * 4
        assert e["seconds_per_video"]["median"] == pytest.approx(
            e["step_seconds"]["median"] / e["videos_per_step"]
        )
    assert oe[1]["relative_to_baseline"] == pytest.approx(1.0)


def test_reasoning_cost_is_reported_for_every_siamese_setting(bench):
    report = bench[0]
    steps = {e["name"]: e["step_seconds"]["median"] for e in report["training"]}
    reasoning = report["reasoning"]
    assert sorted((e["task"], e["num_clips"]) for e in reasoning) == sorted(
        [("open_ended", n) for n in OE_CLIPS if n > 1] + [("multiple_choice", n) for n in MC_CLIPS if n > 1]
    )
    for e in reasoning:
        assert e["reasoning_seconds"]["median"] > 0
        assert e["fraction_of_step"] == pytest.approx(e["reasoning_seconds"]["median"] / steps[e["name"]])
        assert e["meets_target"] == (e["fraction_of_step"] <= 0.01)
    prof = report["reasoning_profile"]
    assert prof["name"] == "open_ended/N=9"
    assert (
        0
        < prof["ranges"]["reasoner"]["fraction_of_step"]
        <= prof["ranges"]["objective"]["fraction_of_step"]
        < 1
    )
    assert prof["top_ops"] and all(op["self_ms_per_step"] >= 0 for op in prof["top_ops"])


@pytest.mark.parametrize("task", ["open_ended", "multiple_choice"])
def test_isolated_reasoning_is_the_loss_of_the_real_objective(task):
    """What the benchmark times alone computes exactly L_siamese of SiaSamReaLoss, with gradients for the
    clip features, the clip logits and W1/W2."""
    b = StepBench(StepSetting(task, 3, videos=2, text_len=6))
    outputs = b.clip_outputs()
    loss, grads = reasoning_fn(b, outputs)()
    expected = b.module.objective(outputs, b.batch["target"]).siamese
    assert torch.allclose(loss, expected)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(grads) == 4  # features, logits, W1, W2


def test_step_trains_the_reasoner_and_the_baseline_has_none():
    b = StepBench(StepSetting("open_ended", 3, videos=2, text_len=6))
    w1 = b.module.objective.reasoner.w1_logits.detach().clone()
    b.step()  # the warm-up's first step has lr 0 (transformers' linear schedule)
    b.step()
    assert not torch.equal(w1, b.module.objective.reasoner.w1_logits)  # W1 is in the optimised step
    base = StepBench(StepSetting("open_ended", 1, videos=2, text_len=6))
    assert base.module.objective.reasoner is None
    with pytest.raises(ValueError, match="baseline"):
        reasoning_fn(base)


# -- inference -------------------------------------------------------------------------------------------
def test_inference_models_have_equal_and_correct_parameter_counts(bench):
    inf, work = bench[0]["inference"], bench[1]
    base, sia = inf["variants"]["baseline"], inf["variants"]["siasamrea"]
    expected = analytic_params(BENCH_VISION, TINY_TEXT, num_answers=20)
    assert inf["equal_params"] is True
    assert base["inference_params"] == sia["inference_params"] == expected
    assert base["num_clips_trained"] == 1 and sia["num_clips_trained"] == 9
    # W1 and W2 (N logits each) exist in training only, and are not saved with the inference model
    assert sia["training_params"] == expected + 2 * 9 and sia["objective_params"] == 2 * 9
    assert base["training_params"] == expected and base["objective_params"] == 0
    for variant, v in inf["variants"].items():
        assert v["saved_files"] == ["config.json", "model.safetensors"]
        saved = load_file(str(work / "inference" / variant / "model.safetensors"))
        assert v["saved_tensor_elements"] == sum(t.numel() for t in saved.values())
        assert not any("logits" in k for k in saved)
    assert inf["equal_flops"] is True
    for bs, lat in inf["latency"].items():
        assert lat["baseline"]["flops"] == lat["siasamrea"]["flops"] > 0
        assert lat["baseline"]["output_shape"] == lat["siasamrea"]["output_shape"] == [int(bs), 20]
        assert lat["baseline"]["seconds"]["median"] > 0


# -- video loading ---------------------------------------------------------------------------------------
def test_video_loading_decodes_the_right_frames(bench):
    loading = bench[0]["loading"]
    files = {f["name"]: f for f in loading["files"]}
    assert "carphone_pristine" in files and "bigbuckbunny" not in files
    assert {f"synth_kf{k}" for k in (1, 16, 250)} <= set(files)
    for name, f in files.items():
        n = pyav_frames(f["path"])
        assert f["num_frames"] == n, name
        assert f["native_size"] == pyav_size(f["path"])
        assert f["keyframes"] == pyav_keyframes(f["path"])
        if f["keyframe_interval"] is not None:  # the writer's keyframe interval is what we asked for
            assert f["keyframes"] == math.ceil(n / f["keyframe_interval"]), name
    sample = loading["sample"]["num_clips"] * loading["sample"]["frames_per_clip"]
    by_file_size = {}
    for e in loading["entries"]:
        f = files[e["file"]]
        by_file_size.setdefault((e["file"], e["size"]), set()).add(e["method"])
        assert e["frames_returned"] == sample == 36
        size = f["native_size"] if e["size"] == "native" else [32, 32]
        assert e["frame_shape"] == [*size, 3]
        assert e["matches_read_frames"] is True, (e["file"], e["size"], e["method"])
        assert e["seconds_per_sample"]["median"] > 0
        if e["method"] == "decode_all":
            assert e["frames_decoded"] == pyav_frames(f["path"])
    for (_, size), methods in by_file_size.items():
        expected = {"read_frames", "decord_get_batch", "decode_all"} | (
            {"cached"} if size == "small" else set()
        )
        assert methods == expected
    assert len(loading["summary"]) == len(by_file_size)


def test_loader_entries_and_verdict(bench):
    loader, work = bench[0]["loader"], bench[1]
    questions = json.loads((work / "synthetic" / "msvd-qa" / "train_qa.json").read_text())
    assert loader["dataset"]["questions"] == len(questions)
    assert sorted((e["frames"], e["workers"]) for e in loader["entries"]) == [
        ("cached", 0),
        ("cached", 1),
        ("decoded", 0),
        ("decoded", 1),
    ]
    for e in loader["entries"]:
        assert e["loader_seconds_per_batch"]["n"] == TINY["loader_batches"] - 1
        assert e["loop_seconds_per_batch"]["n"] == TINY["loader_batches"] - 1
        assert 0 <= e["loop_wait_fraction"] <= 1
        assert e["loop_slowdown"] == pytest.approx(
            e["loop_seconds_per_batch"]["median"] / e["step_alone_seconds"]["median"]
        )
        assert e["keeps_up"] == (e["loop_slowdown"] <= 1 + loader["threshold"])


# -- memory ----------------------------------------------------------------------------------------------
def test_memory_grows_with_the_number_of_clips(bench):
    mem = {e["num_clips"]: e for e in bench[0]["memory"]}
    assert sorted(mem) == [1, 2]
    for e in mem.values():
        assert e["peak_rss_mb"] >= e["rss_before_mb"] > 0
        assert e["videos_per_step"] == 1
    # autograd keeps activations for every clip: twice the clips, more saved tensors
    assert mem[2]["saved_activations_mb"] > 1.5 * mem[1]["saved_activations_mb"] > 0


def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--quick", "--threads", "1", "--only", "inference", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "inference"} and "training" not in report
    assert report["inference"]["equal_params"] is True
    assert "equal params: True" in capsys.readouterr().out
