"""What the paper profile needs at scale: chunked / checkpointed vision pass, mixed precision, and starting
from a ClipBERT checkpoint (detectron2 ResNet-50 names, BGR input, MSRA strides)."""

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from siasamrea.method.clipbert import CLIPBERT_PIXEL_STD, load_clipbert, map_key
from siasamrea.method.config import ConfigError, load_config
from siasamrea.method.model import TINY_TEXT, ClipBertVQA, ModelConfig
from siasamrea.perf import write_report
from siasamrea.perf.paper import run_paper_scale
from siasamrea.training.build import freeze_batchnorm
from siasamrea.training.trainer import resolve_precision

HEADS = {"oe": {"kind": "open_ended", "num_answers": 7}, "mc": {"kind": "multiple_choice"}}

#: A 4-stage bottleneck ResNet laid out as detectron2's MSRA ResNet (stride in the first 1x1 conv).
TINY_R50 = dict(
    num_channels=3, embedding_size=8, hidden_sizes=[16, 32, 48, 64], depths=[2, 1, 1, 1],
    layer_type="bottleneck", hidden_act="relu", downsample_in_first_stage=False,
    downsample_in_bottleneck=True,
)  # fmt: skip
TEXT = {**TINY_TEXT, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}


def _model(**kw) -> ClipBertVQA:
    torch.manual_seed(0)
    return ClipBertVQA(ModelConfig(heads=HEADS, vision=dict(TINY_R50), text=dict(TEXT), **kw))


def _inputs(v=2, n=3, t=2, size=64):
    g = torch.Generator().manual_seed(1)
    px = torch.randint(0, 256, (v, n, t, size, size, 3), dtype=torch.uint8, generator=g)
    ids = torch.randint(5, 400, (v, 6), generator=g)
    return px, ids, torch.ones_like(ids)


# -- memory options --------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["linear", "clipbert"])
@pytest.mark.parametrize("chunk,ckpt", [(4, False), (5, True), (None, True), (1, True)])
def test_chunked_checkpointed_vision_equals_the_plain_path(head, chunk, ckpt):
    plain = _model(visual_head=head)
    other = _model(visual_head=head, vision_chunk_frames=chunk, checkpoint_vision=ckpt)
    other.load_state_dict(plain.state_dict())
    for m in (plain, other):
        m.train()
        freeze_batchnorm(m)  # the configuration requires it: chunks must not change BatchNorm's statistics
    px, ids, att = _inputs()
    torch.manual_seed(3)
    out_a = plain(px, ids, att, "oe")
    torch.manual_seed(3)  # same dropout masks in BERT
    out_b = other(px, ids, att, "oe")
    torch.testing.assert_close(out_b.logits, out_a.logits, rtol=1e-5, atol=1e-5)
    out_a.logits.square().sum().backward()
    out_b.logits.square().sum().backward()
    for (name, pa), pb in zip(plain.named_parameters(), other.parameters(), strict=True):
        if pa.grad is None:
            assert pb.grad is None, name
            continue
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the vision weights did get gradient (the checkpointed path is not detached)
    assert other.vision.embedder.embedder.convolution.weight.grad.abs().sum() > 0


def test_checkpointing_keeps_fewer_activations_for_backward():
    def saved_bytes(model) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        model.train()
        freeze_batchnorm(model)
        px, ids, att = _inputs(v=1, n=4, t=2)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(px, ids, att, "oe").logits.sum()
        return total

    plain = saved_bytes(_model())
    chunked = saved_bytes(_model(vision_chunk_frames=2, checkpoint_vision=True))
    assert chunked < 0.5 * plain, (chunked, plain)


def _config(tmp_path, *sets):
    (tmp_path / "tok").mkdir(exist_ok=True)
    return load_config(None, [f"data.root={tmp_path}", f"data.tokenizer={tmp_path / 'tok'}", *sets])


def test_chunking_needs_frozen_batchnorm_and_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match="model.vision_chunk_frames.*frozen BatchNorm"):
        _config(tmp_path, "model.vision_chunk_frames=4")
    with pytest.raises(ConfigError, match="model.vision_chunk_frames"):
        _config(tmp_path, "model.checkpoint_vision=true")
    cfg = _config(
        tmp_path, "model.vision_chunk_frames=4", "model.checkpoint_vision=true", "model.freeze_bn=true"
    )
    assert cfg.model.vision_chunk_frames == 4
    with pytest.raises(ConfigError, match="model.vision_chunk_frames: must be >= 1"):
        _config(tmp_path, "model.vision_chunk_frames=0", "model.freeze_bn=true")
    with pytest.raises(ConfigError, match="run.precision"):
        _config(tmp_path, "run.precision=fp8")
    with pytest.raises(ConfigError, match="model.clipbert_checkpoint.*visual_head"):
        (tmp_path / "c.pt").write_bytes(b"")
        _config(tmp_path, f"model.clipbert_checkpoint={tmp_path / 'c.pt'}")


# -- precision --------------------------------------------------------------------------------
def test_precision_is_decided_by_the_device_unless_forced(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("auto", cuda, bf16=False) == "fp32"  # run.bf16: false keeps its meaning
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda) == "fp16"  # V100: fp16 with a GradScaler
    for forced in ("fp32", "bf16", "fp16"):
        assert resolve_precision(forced, cuda) == forced
        assert resolve_precision(forced, cpu) == forced


def test_fp16_step_with_grad_scaler_skips_overflow_and_trains_otherwise():
    """The engine's fp16 recipe on CPU: scaled backward, unscale, clip, step; an inf gradient skips it."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = torch.randn(16, 8)
    before = layer.weight.detach().clone()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = layer(x).float().square().mean() * float("inf")  # overflow
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    assert torch.equal(layer.weight, before)  # skipped
    assert scaler.get_scale() == 2.0**9  # and the scale backed off
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        out = layer(x)
        assert out.dtype == torch.float16
        loss = out.float().square().mean()
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(layer.parameters(), 1.0)
    scaler.step(opt)
    scaler.update()
    assert not torch.equal(layer.weight, before)


# -- ClipBERT checkpoint --------------------------------------------------------------------------------
def _frozen_bn(x, p):
    return F.batch_norm(x, p["running_mean"], p["running_var"], p["weight"], p["bias"], False, 0.0, 1e-5)


def _clipbert_state_dict(seed=5) -> dict:
    """A state dict with ClipBERT's key names and shapes (tiny sizes): detectron2 ResNet, grid encoder, BERT,
    visual embeddings, and the heads and detector parts this model has no use for."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    sd = {}

    def conv_bn(prefix, cout, cin, k):
        sd[f"{prefix}.weight"] = r(cout, cin, k, k)
        sd[f"{prefix}.norm.weight"] = 1 + r(cout)
        sd[f"{prefix}.norm.bias"] = r(cout)
        sd[f"{prefix}.norm.running_mean"] = r(cout)
        sd[f"{prefix}.norm.running_var"] = 0.5 + torch.rand(cout, generator=g)

    bb = "cnn.feature.backbone"
    conv_bn(f"{bb}.stem.conv1", TINY_R50["embedding_size"], 3, 7)
    cin = TINY_R50["embedding_size"]
    for s, (cout, depth) in enumerate(zip(TINY_R50["hidden_sizes"], TINY_R50["depths"], strict=True)):
        red = cout // 4
        for i in range(depth):
            block = f"{bb}.res{s + 2}.{i}"
            if i == 0:
                conv_bn(f"{block}.shortcut", cout, cin, 1)
            conv_bn(f"{block}.conv1", red, cin if i == 0 else cout, 1)
            conv_bn(f"{block}.conv2", red, red, 3)
            conv_bn(f"{block}.conv3", cout, red, 1)
        cin = cout
    sd["cnn.grid_encoder.0.weight"] = r(TEXT["hidden_size"], cin, 3, 3)
    sd["cnn.feature.roi_heads.box_head.fc1.weight"] = r(4, 4)
    sd["cnn.feature.proposal_generator.rpn_head.conv.weight"] = r(4, 4, 3, 3)
    bert = BertModel(BertConfig(**TEXT), add_pooling_layer=True)
    for k, v in bert.state_dict().items():
        sd[f"transformer.bert.{k}"] = r(*v.shape) if v.is_floating_point() else v
    h = TEXT["hidden_size"]
    ve = "transformer.bert.visual_embeddings"
    sd[f"{ve}.position_embeddings.weight"] = r(TEXT["max_position_embeddings"], h)
    sd[f"{ve}.row_position_embeddings.weight"] = r(100, h)
    sd[f"{ve}.col_position_embeddings.weight"] = r(100, h)
    sd[f"{ve}.token_type_embeddings.weight"] = r(1, h)
    sd[f"{ve}.LayerNorm.weight"] = 1 + r(h)
    sd[f"{ve}.LayerNorm.bias"] = r(h)
    sd["transformer.cls.predictions.bias"] = r(TEXT["vocab_size"])
    sd["transformer.classifier.0.weight"] = r(2 * h, h)
    return sd


def _detectron2_resnet(sd: dict, bgr: torch.Tensor) -> torch.Tensor:
    """detectron2's ResNet (stride_in_1x1, FrozenBatchNorm, res5 dilation 1) in torch.nn.functional."""
    bb = "cnn.feature.backbone"

    def cbn(x, prefix, stride=1, padding=0, relu=True):
        p = {k: sd[f"{prefix}.norm.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
        x = _frozen_bn(F.conv2d(x, sd[f"{prefix}.weight"], stride=stride, padding=padding), p)
        return F.relu(x) if relu else x

    x = cbn(bgr, f"{bb}.stem.conv1", stride=2, padding=3)
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for s, depth in enumerate(TINY_R50["depths"]):
        for i in range(depth):
            block = f"{bb}.res{s + 2}.{i}"
            stride = 2 if (i == 0 and s > 0) else 1
            short = cbn(x, f"{block}.shortcut", stride=stride, relu=False) if i == 0 else x
            y = cbn(x, f"{block}.conv1", stride=stride)  # MSRA: the stride is in the first 1x1
            y = cbn(y, f"{block}.conv2", padding=1)
            y = cbn(y, f"{block}.conv3", relu=False)
            x = F.relu(y + short)
    return x


def test_clipbert_keys_map_onto_the_model_and_every_unmatched_key_is_reported():
    model = _model(visual_head="clipbert")
    sd = _clipbert_state_dict()
    report = load_clipbert(model, dict(sd))
    own = model.state_dict()
    # every backbone, grid-encoder, BERT embedding/encoder and visual-embedding tensor landed, values intact
    expected_unmatched = {
        "cnn.feature.roi_heads.box_head.fc1.weight", "cnn.feature.proposal_generator.rpn_head.conv.weight",
        "transformer.bert.pooler.dense.weight", "transformer.bert.pooler.dense.bias",
        "transformer.bert.visual_embeddings.position_embeddings.weight", "transformer.cls.predictions.bias",
        "transformer.classifier.0.weight",
    }  # fmt: skip
    assert set(report.unmatched_source) == expected_unmatched
    assert "detector" in report.unmatched_source["cnn.feature.roi_heads.box_head.fc1.weight"]
    assert not report.shape_mismatch
    assert len(report.loaded) == len(sd) - len(expected_unmatched)
    assert torch.equal(own["bert.encoder.layer.1.attention.self.query.weight"],
                       sd["transformer.bert.encoder.layer.1.attention.self.query.weight"])  # fmt: skip
    assert torch.equal(own["visual.grid_encoder.0.weight"], sd["cnn.grid_encoder.0.weight"])
    assert torch.equal(
        own["visual.row.weight"], sd["transformer.bert.visual_embeddings.row_position_embeddings.weight"][:16]
    )
    assert report.truncated == ["visual.row.weight", "visual.col.weight"]
    # what stays at initialisation: the task heads only
    assert report.missing and all(k.startswith("heads.") for k in report.missing), report.missing
    assert map_key("cnn.feature.backbone.res3.0.conv1.norm.running_var") == (
        "vision.encoder.stages.1.layers.0.layer.0.normalization.running_var"
    )


def test_loaded_resnet_computes_what_detectron2_computes_on_bgr_input():
    model = _model(visual_head="clipbert").eval()
    sd = _clipbert_state_dict()
    load_clipbert(model, sd)
    rgb = torch.rand(2, 3, 64, 64) * 255
    ours = model.vision(rgb).last_hidden_state  # RGB in: the stem's channels were reversed on load
    ref = _detectron2_resnet(sd, rgb[:, [2, 1, 0]])  # ClipBERT flips RGB -> BGR before the backbone
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # ClipBERT's pixel convention is what the pipeline sets for this head
    assert CLIPBERT_PIXEL_STD[0] == pytest.approx(1 / 255)


class _Payload:
    """An arbitrary Python object: a checkpoint holding one must not be unpickled."""


def test_clipbert_checkpoint_file_loads_tensors_only_and_refuses_a_wrong_model(tmp_path):
    path = tmp_path / "clipbert_image_text_pretrained.pt"
    torch.save({f"module.{k}": v for k, v in _clipbert_state_dict().items()}, path)
    model = _model(visual_head="clipbert")
    report = load_clipbert(model, path)  # DDP's module. prefix is stripped
    assert len(report.loaded) > 50 and "loaded" in str(report)
    with pytest.raises(ValueError, match="visual_head: clipbert"):
        load_clipbert(_model(), path)
    torch_style = ClipBertVQA(ModelConfig(heads=HEADS, vision={**TINY_R50, "downsample_in_bottleneck": False},
                                          text=dict(TEXT), visual_head="clipbert"))  # fmt: skip
    with pytest.raises(ValueError, match="downsample_in_bottleneck"):
        load_clipbert(torch_style, path)
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Payload()}, evil)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # no code is unpickled
        load_clipbert(model, evil)


def test_clipbert_head_forward_has_the_expected_shapes():
    model = _model(visual_head="clipbert")
    px, ids, att = _inputs(v=2, n=3, t=2, size=64)
    out = model(px, ids, att, "oe")
    assert out.logits.shape == (2, 3, 7) and out.features.shape == (2, 3, TEXT["hidden_size"])
    # padding a question must not change its prediction (the visual tokens are always attended)
    model.eval()
    pad_ids = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)
    pad_att = torch.cat([att, torch.zeros(2, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(model(px, pad_ids, pad_att, "oe").logits, model(px, ids, att, "oe").logits,
                               rtol=1e-5, atol=1e-5)  # fmt: skip


# -- the paper-scale benchmark's report ------------------------------------------------------------------
def test_paper_scale_run_reports_consistent_memory_and_names_files_only(tmp_path):
    r = run_paper_scale(quick=True, log=lambda *_: None)
    acts = {(a["frame_size"], a["num_clips"]): a for a in r["activations"]}
    # saved activations grow linearly with the clip-frames: the same per-frame cost at N = 1 and 2 ...
    assert acts[(64, 2)]["vision_per_clip_frame_mib"] == pytest.approx(
        acts[(64, 1)]["vision_per_clip_frame_mib"], rel=0.01
    )
    # ... and with the pixels of a frame (128 px = 4x the pixels of 64 px), which the prediction relies on
    assert acts[(128, 1)]["vision_per_clip_frame_mib"] == pytest.approx(
        4 * acts[(64, 1)]["vision_per_clip_frame_mib"], rel=0.02
    )
    pred = r["prediction"]
    assert pred["peak_gib_fp32"]["chunked_checkpointed"] < pred["peak_gib_fp32"]["plain"]
    by_chunk = pred["peak_gib_fp32_by_chunk"]
    assert by_chunk["1"] < by_chunk["16"] < by_chunk["32"]
    assert r["reasoning"]["fraction_of_step"] > 0 and [s["num_clips"] for s in r["steps"]] == [1, 2, 1]
    out = tmp_path / "report.json"
    write_report({**r, "files": {"path": "/tmp/x/videos/a.mp4", "text": "not a path"}}, out)
    saved = json.loads(out.read_text())
    assert saved["files"] == {"path": "a.mp4", "text": "not a path"}
    assert '"/' not in out.read_text()
