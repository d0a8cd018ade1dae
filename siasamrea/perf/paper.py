"""Paper-scale cost on a CPU: ``python -m siasamrea.perf --scale paper``.

ResNet-50 and BERT-base are built from their ``transformers`` configs (random weights, nothing downloaded)
with ClipBERT's visual path (``visual_head="clipbert"``, MSRA strides, frozen BatchNorm as with pretrained
weights). One video per step, as the paper's batch of 1 per GPU. Measured:

``steps``       forward + backward of one video (model + Eq. 8 objective): the baseline (N = 1) and SiaSamRea
                at N = 2, 5, 9 with B frames per clip at 224 px; N = 1, 2 with one frame at 448 px
``reasoning``   SKG + SKR + L_siamese forward + backward alone on the N = 9 step's shapes (features
                ``[1, 9, 768]``, logits ``[1, 9, K]``) and its share of the N = 9 step (target <= 1%)
``activations`` bytes autograd saves for backward, split into the vision pass (per clip-frame) and the
                rest (BERT and heads, per clip), at every measured point
``peak``        peak resident memory of one training step (VmHWM reset before it) with the plain vision
                pass and with chunking + checkpointing, N = 9
``prediction``  the paper's setting (N = 9, B = 16, 448 px, one video): activations and peak from the
                per-frame and per-clip costs above, with and without the memory options, beside the
                measured points they are checked against
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from siasamrea.method.config import Config
from siasamrea.method.model import ClipBertVQA, ClipOutputs, HeadSpec, ModelConfig
from siasamrea.perf.memory import proc_status_mb, reset_peak_rss
from siasamrea.perf.step_timing import reasoning_fn
from siasamrea.perf.timing import round_robin
from siasamrea.training.build import build_objective, freeze_batchnorm

PAPER_SETTING = {"num_clips": 9, "frames_per_clip": 16, "frame_size": 448, "videos": 1}
MIB = 2**20


def paper_profile(quick: bool = False) -> dict:
    """Sizes of the run (``quick``: tiny, for tests of the wiring only)."""
    full = dict(
        clips=(1, 2, 5, 9),
        frames_per_clip=2,
        size=224,
        big_size=448,
        big_clips=(1, 2),
        big_frames=1,
        answers=1000,
        text_len=20,
        warmup=1,
        repeats=3,
        big_repeats=2,
        reasoning_repeats=5,
        reasoning_inner=20,
        chunk=2,
        peak_clips=9,
        vision={"downsample_in_bottleneck": True},
        text={},
    )
    if not quick:
        return full
    tiny_vision = dict(
        embedding_size=8,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        layer_type="bottleneck",
        downsample_in_bottleneck=True,
    )
    tiny_text = dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=512
    )
    return {
        **full,
        **dict(
            clips=(1, 2),
            size=64,
            big_size=128,
            big_clips=(1,),
            answers=10,
            text_len=6,
            warmup=0,
            repeats=1,
            big_repeats=1,
            reasoning_repeats=1,
            reasoning_inner=1,
            peak_clips=2,
            vision=tiny_vision,
            text=tiny_text,
        ),
    }


def _model(p: dict, chunk: int | None = None, checkpoint: bool = False) -> ClipBertVQA:
    head = HeadSpec("open_ended", p["answers"], [f"a{i}" for i in range(p["answers"])])
    cfg = ModelConfig(
        heads={"oe": head},
        vision=dict(p["vision"]),
        text=dict(p["text"]),
        visual_head="clipbert",
        vision_chunk_frames=chunk,
        checkpoint_vision=checkpoint,
    )
    torch.manual_seed(0)
    model = ClipBertVQA(cfg)
    model.train()
    freeze_batchnorm(model)  # pretrained ResNet: frozen BatchNorm (and required by chunking)
    return model


def _objective(num_clips: int, hidden: int):
    cfg = Config()
    cfg.method.variant = "baseline" if num_clips == 1 else "siasamrea"
    cfg.method.num_clips = max(2, num_clips)
    obj = build_objective(cfg, hidden)
    obj.train()
    return obj


def _batch(p: dict, n: int, b: int, size: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    vocab = p["text"].get("vocab_size", 30522)
    return {
        "frames": torch.randint(0, 256, (1, n, b, size, size, 3), dtype=torch.uint8, generator=g),
        "input_ids": torch.randint(5, vocab, (1, p["text_len"]), generator=g),
        "attention_mask": torch.ones(1, p["text_len"], dtype=torch.long),
        "target": torch.randint(0, p["answers"], (1,), generator=g),
    }


def _step_fn(model, objective, batch):
    def run():
        out = model(batch["frames"], batch["input_ids"], batch["attention_mask"], "oe")
        loss = objective(out, batch["target"]).total
        model.zero_grad(set_to_none=True)
        objective.zero_grad(set_to_none=True)
        loss.backward()

    return run


def _saved_bytes(fn, params: set[int]) -> int:
    """Bytes of the distinct storages autograd saves during ``fn()`` (parameters excluded)."""
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def _activations(model, objective, p, n, b, size) -> dict:
    params = {q.untyped_storage().data_ptr() for q in model.parameters()}
    batch = _batch(p, n, b, size)
    vision = _saved_bytes(lambda: model.encode_clips(batch["frames"]), params)
    total = _saved_bytes(
        lambda: (
            objective(
                model(batch["frames"], batch["input_ids"], batch["attention_mask"], "oe"), batch["target"]
            ).total
        ),
        params,
    )
    return {
        "num_clips": n,
        "frames_per_clip": b,
        "frame_size": size,
        "clip_frames": n * b,
        "vision_mib": vision / MIB,
        "total_mib": total / MIB,
        "rest_mib": (total - vision) / MIB,
        "vision_per_clip_frame_mib": vision / (n * b) / MIB,
        "rest_per_clip_mib": (total - vision) / n / MIB,
    }


def _peak_step_mib(fn) -> dict:
    """Peak resident memory of one call of ``fn`` above the resident memory before it (Linux VmHWM)."""
    if not reset_peak_rss():
        return {"available": False}
    before = proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    fn()
    return {
        "available": True,
        "rss_before_mib": before,
        "peak_increase_mib": proc_status_mb("VmHWM") - before,
        "seconds": time.perf_counter() - t0,
    }


def run_paper_scale(quick: bool = False, log=print, overrides: dict | None = None) -> dict:
    p = {**paper_profile(quick), **(overrides or {})}
    t_start = time.perf_counter()
    log("paper scale: building ResNet-50 + BERT-base (random weights) ...")
    model = _model(p)
    hidden = model.hidden_size
    n_params = sum(q.numel() for q in model.parameters())
    objectives = {n: _objective(n, hidden) for n in sorted({*p["clips"], *p["big_clips"]})}
    b, size = p["frames_per_clip"], p["size"]
    log(f"paper scale: timing forward+backward, N in {p['clips']}, B={b}, {size} px ...")
    cases = {
        f"N={n} B={b} {size}px": _step_fn(model, objectives[n], _batch(p, n, b, size)) for n in p["clips"]
    }
    steps = round_robin(cases, warmup=p["warmup"], repeats=p["repeats"])
    big = p["big_size"]
    log(f"paper scale: timing at {big} px, N in {p['big_clips']}, B={p['big_frames']} ...")
    big_cases = {
        f"N={n} B={p['big_frames']} {big}px": _step_fn(
            model, objectives[n], _batch(p, n, p["big_frames"], big)
        )
        for n in p["big_clips"]
    }
    steps.update(round_robin(big_cases, warmup=p["warmup"], repeats=p["big_repeats"]))
    step_rows = []
    for name, stats in steps.items():
        n = int(name.split()[0][2:])
        bb = int(name.split()[1][2:])
        step_rows.append(
            {
                "name": name,
                "num_clips": n,
                "frames_per_clip": bb,
                "frame_size": int(name.split()[2][:-2]),
                "seconds": stats,
            }
        )
    base = {r["frame_size"]: r["seconds"]["median"] for r in step_rows if r["num_clips"] == 1}
    for r in step_rows:
        r["relative_to_baseline"] = r["seconds"]["median"] / base[r["frame_size"]]

    n_max = max(p["clips"])
    log(f"paper scale: reasoning alone at N={n_max} ...")
    step_max = steps[f"N={n_max} B={b} {size}px"]
    obj = objectives[n_max]
    g = torch.Generator().manual_seed(1)
    outputs = ClipOutputs(
        features=torch.randn(1, n_max, hidden, generator=g, requires_grad=True),
        logits=torch.randn(1, n_max, p["answers"], generator=g, requires_grad=True),
        kind="open_ended",
    )
    shim = SimpleNamespace(module=SimpleNamespace(objective=obj), setting=SimpleNamespace(name=f"N={n_max}"))
    rstats = round_robin(
        {"reasoning": reasoning_fn(shim, outputs)},
        warmup=2,
        repeats=p["reasoning_repeats"],
        inner=p["reasoning_inner"],
    )["reasoning"]
    share = rstats["median"] / step_max["median"]
    reasoning = {
        "num_clips": n_max,
        "seconds": rstats,
        "step_seconds_median": step_max["median"],
        "fraction_of_step": share,
        "target_fraction": 0.01,
        "meets_target": share <= 0.01,
    }

    log("paper scale: activation memory (bytes saved for backward) ...")
    acts = [_activations(model, objectives[n], p, n, b, size) for n in p["clips"]]
    acts += [_activations(model, objectives[n], p, n, p["big_frames"], big) for n in p["big_clips"]]

    log(f"paper scale: peak memory of one step, N={p['peak_clips']}, plain vs chunked + checkpointed ...")
    peak_batch = _batch(p, p["peak_clips"], b, size)
    peak = {"plain": _peak_step_mib(_step_fn(model, objectives[p["peak_clips"]], peak_batch))}
    ckpt_model = _model(p, chunk=p["chunk"], checkpoint=True)
    ckpt_model.load_state_dict(model.state_dict())
    del model
    peak["chunked_checkpointed"] = _peak_step_mib(
        _step_fn(ckpt_model, objectives[p["peak_clips"]], peak_batch)
    )
    peak["chunk_frames"] = p["chunk"]
    peak["num_clips"], peak["frames_per_clip"], peak["frame_size"] = p["peak_clips"], b, size

    prediction = predict(acts, n_params, hidden, p, peak)
    return {
        "scale": "paper",
        "settings": {k: v for k, v in p.items()},
        "parameters": n_params,
        "steps": step_rows,
        "reasoning": reasoning,
        "activations": acts,
        "peak": peak,
        "prediction": prediction,
        "seconds": time.perf_counter() - t_start,
    }


def predict(acts: list[dict], n_params: int, hidden: int, p: dict, peak: dict) -> dict:
    """Activation and peak memory of the paper's setting from the measured per-frame / per-clip costs.

    Vision activations scale with the pixels of a frame (convolutions: every map is H x W / stride^2), so the
    per-clip-frame cost at ``size`` is scaled by ``(448 / size)^2``; the per-clip rest (BERT over text + grid
    tokens) is taken from the measured 448-px points. Static memory: fp32 weights, gradients and AdamW's two
    moments (16 bytes per parameter). With chunking + checkpointing, the vision pass keeps per frame only its
    uint8 input and its grid output, plus one chunk's activations while a chunk is recomputed.
    """
    size, big = p["size"], p["big_size"]
    ref = max((a for a in acts if a["frame_size"] == size), key=lambda a: a["clip_frames"])
    per_frame_small = ref["vision_per_clip_frame_mib"]
    scale = (big / size) ** 2
    per_frame_big = per_frame_small * scale
    big_points = [a for a in acts if a["frame_size"] == big]
    per_clip_big = max(a["rest_per_clip_mib"] for a in big_points)
    n, bb = PAPER_SETTING["num_clips"], PAPER_SETTING["frames_per_clip"]
    static = 16 * n_params / MIB
    plain_act = n * bb * per_frame_big + n * per_clip_big
    grid = big // 32 // 2  # res5 stride 32, then ClipBERT's 2x2 max-pool
    kept_per_frame = (3 * big * big + 4 * hidden * grid * grid) / MIB  # uint8 input + fp32 grid output
    chunk = p["chunk"]
    ckpt_act = n * bb * kept_per_frame + chunk * per_frame_big + n * per_clip_big
    checks = []
    for a in acts:  # each measured point against the same two constants
        pf = per_frame_small if a["frame_size"] == size else per_frame_small * (a["frame_size"] / size) ** 2
        predicted = a["clip_frames"] * pf
        checks.append(
            {
                "num_clips": a["num_clips"],
                "frames_per_clip": a["frames_per_clip"],
                "frame_size": a["frame_size"],
                "vision_measured_mib": a["vision_mib"],
                "vision_predicted_mib": predicted,
                "ratio": a["vision_mib"] / predicted,
            }
        )
    if peak.get("plain", {}).get("available"):
        pn = peak["num_clips"]
        pa = next(a for a in acts if a["frame_size"] == size and a["num_clips"] == pn)
        checks.append(
            {
                "peak_step_plain_measured_mib": peak["plain"]["peak_increase_mib"],
                "saved_activations_mib": pa["total_mib"],
                "note": "peak increase of a step = saved activations + gradients + transient buffers",
            }
        )
    return {
        "setting": dict(PAPER_SETTING),
        "vision_per_clip_frame_mib": {f"{size}px": per_frame_small, f"{big}px": per_frame_big},
        "rest_per_clip_mib_big": per_clip_big,
        "static_mib": static,
        "activations_mib": {"plain": plain_act, "chunked_checkpointed": ckpt_act},
        "peak_gib_fp32": {
            "plain": (static + plain_act) / 1024,
            "chunked_checkpointed": (static + ckpt_act) / 1024,
        },
        "chunk_frames": chunk,
        # the same prediction for other chunk sizes (the paper profile uses 16)
        "peak_gib_fp32_by_chunk": {
            str(c): (static + n * bb * kept_per_frame + c * per_frame_big + n * per_clip_big) / 1024
            for c in (1, 2, 4, 8, 16, 32)
        },
        "checks": checks,
        "notes": "fp32; bf16/fp16 autocast roughly halves the activations (not measurable on this CPU)",
    }


def format_paper(report: dict) -> str:
    """A Markdown summary of :func:`run_paper_scale`'s report."""
    lines = ["| step (one video, fwd+bwd) | median s | × baseline |", "|---|---|---|"]
    for r in report["steps"]:
        lines.append(f"| {r['name']} | {r['seconds']['median']:.2f} | {r['relative_to_baseline']:.2f} |")
    rs = report["reasoning"]
    lines.append(
        f"\nreasoning alone at N={rs['num_clips']}: {rs['seconds']['median'] * 1e3:.2f} ms = "
        f"{100 * rs['fraction_of_step']:.3f}% of the step (target <= 1%: "
        f"{'met' if rs['meets_target'] else 'not met'})"
    )
    pr = report["prediction"]
    lines.append(
        f"vision activations per clip-frame: {pr['vision_per_clip_frame_mib']}; BERT etc. per clip at "
        f"{report['settings']['big_size']} px: {pr['rest_per_clip_mib_big']:.1f} MiB; static "
        f"(weights+grads+AdamW) {pr['static_mib'] / 1024:.2f} GiB"
    )
    lines.append(
        f"paper setting {pr['setting']}: predicted peak {pr['peak_gib_fp32']['plain']:.1f} GiB plain, "
        f"{pr['peak_gib_fp32']['chunked_checkpointed']:.1f} GiB chunked ({pr['chunk_frames']} frames) "
        "+ checkpointed (fp32)"
    )
    pk = report["peak"]
    if pk["plain"].get("available"):
        lines.append(
            f"measured peak of one step at N={pk['num_clips']}, B={pk['frames_per_clip']}, "
            f"{pk['frame_size']} px: plain +{pk['plain']['peak_increase_mib']:.0f} MiB, chunked + "
            f"checkpointed +{pk['chunked_checkpointed']['peak_increase_mib']:.0f} MiB"
        )
    return "\n".join(lines)
