"""The ClipBERT-style model: shapes, anchor-only inference, batching of clips, checkpoints."""

import pytest
import torch
from transformers import BertConfig, BertModel, ResNetConfig, ResNetModel

from siasamrea.method.losses import SiaSamReaLoss
from siasamrea.method.model import TINY_TEXT, TINY_VISION, ClipBertVQA, ModelConfig
from siasamrea.method.reasoning import SiameseReasoner

HEADS = {
    "oe": {"kind": "open_ended", "num_answers": 11},
    "mc": {"kind": "multiple_choice"},
    "cnt": {"kind": "count"},
}


def tiny_model(**kw):
    torch.manual_seed(0)
    return ClipBertVQA(ModelConfig(heads=HEADS, **kw))


def batch(v=2, n=3, t=2, size=32, m=None, length=7):
    px = torch.randint(0, 256, (v, n, t, size, size, 3), dtype=torch.uint8)
    shape = (v, length) if m is None else (v, m, length)
    ids = torch.randint(5, 400, shape)
    return px, ids, torch.ones_like(ids)


def test_output_shapes_for_every_head():
    model = tiny_model()
    px, ids, att = batch()
    out = model(px, ids, att, "oe")
    assert out.features.shape == (2, 3, 64) and out.logits.shape == (2, 3, 11)
    assert model(px, ids, att, "cnt").logits.shape == (2, 3)
    px, ids, att = batch(m=5)
    out = model(px, ids, att, "mc")
    assert out.logits.shape == (2, 3, 5) and out.features.shape == (2, 3, 64)


@pytest.mark.parametrize("task,m", [("oe", None), ("mc", 4), ("cnt", None)])
def test_inference_on_anchor_equals_training_forward_anchor_row(task, m):
    model = tiny_model().eval()
    px, ids, att = batch(v=3, n=4, m=m)
    with torch.no_grad():
        train_rows = model(px, ids, att, task).logits[:, 0]
        infer = model.predict(px[:, 0], ids, att, task)
    torch.testing.assert_close(infer, train_rows, rtol=1e-4, atol=1e-5)


def test_dropout_is_active_in_training_mode():
    # the anchor-copies ablation relies on dropout making copies of one clip differ
    model = tiny_model().train()
    px, ids, att = batch(n=1)
    copies = px.expand(-1, 4, -1, -1, -1, -1)
    out = model(copies, ids, att, "oe").logits
    assert not torch.allclose(out[:, 0], out[:, 1])
    model.eval()
    out = model(copies, ids, att, "oe").logits
    torch.testing.assert_close(out[:, 0], out[:, 1], rtol=1e-4, atol=1e-5)


def test_videos_and_clips_do_not_leak_into_each_other():
    model = tiny_model().eval()
    px, ids, att = batch(v=2, n=3)
    with torch.no_grad():
        ref = model(px, ids, att, "oe").logits
        px2 = px.clone()
        px2[1] = torch.randint(0, 256, px2[1].shape, dtype=torch.uint8)  # change video 1 only
        px2[0, 2] = torch.randint(0, 256, px2[0, 2].shape, dtype=torch.uint8)  # and clip 2 of video 0
        out = model(px2, ids, att, "oe").logits
    torch.testing.assert_close(out[0, :2], ref[0, :2], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out[0, 2], ref[0, 2])
    assert not torch.allclose(out[1], ref[1])


def test_multiple_choice_scores_follow_their_candidates():
    model = tiny_model().eval()
    px, ids, att = batch(v=2, n=2, m=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        s = model(px, ids, att, "mc").logits
        sp = model(px, ids[:, perm], att[:, perm], "mc").logits
    torch.testing.assert_close(sp, s[..., perm], rtol=1e-4, atol=1e-5)


def test_text_padding_and_frame_mask_are_ignored():
    model = tiny_model().eval()
    px, ids, att = batch(v=2, n=2, t=3)
    mask = torch.ones(2, 2, 3, dtype=torch.bool)
    mask[:, :, 2] = False
    noisy = px.clone()
    noisy[:, :, 2] = torch.randint(0, 256, noisy[:, :, 2].shape, dtype=torch.uint8)
    padded_ids = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], 1)
    padded_att = torch.cat([att, torch.zeros(2, 4, dtype=torch.long)], 1)
    with torch.no_grad():
        ref = model(px[:, :, :2], ids, att, "oe").logits
        out = model(noisy, padded_ids, padded_att, "oe", frame_mask=mask).logits
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_all_clips_go_through_the_encoders_in_one_batch():
    model = tiny_model()
    calls = []
    model.vision.embedder.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    model.bert.register_forward_hook(
        lambda mod, args, kwargs, out: calls.append(kwargs["inputs_embeds"].shape[0]), with_kwargs=True
    )
    px, ids, att = batch(v=2, n=5, t=3, m=4)
    model(px, ids, att, "mc")
    assert calls == [
        2 * 5 * 3,
        2 * 5 * 4,
    ]  # one ResNet call on V*N*T frames, one BERT call on V*N*M sequences


def test_inference_model_has_the_baselines_parameter_count():
    baseline = tiny_model()
    sia_model = tiny_model()
    objective = SiaSamReaLoss(SiameseReasoner(9, sia_model.hidden_size))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(sia_model) == count(baseline)
    assert count(objective) == 2 * 9  # W1 and W2 only, and they live outside the model
    assert not any("w1" in n or "w2" in n for n, _ in sia_model.named_parameters())


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = ClipBertVQA.from_pretrained(tmp_path / "ckpt").eval()
    px, ids, att = batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(px, ids, att, "oe").logits, model(px, ids, att, "oe").logits)
    assert sorted(loaded.heads) == sorted(HEADS)


def test_local_pretrained_encoders_are_loaded(tmp_path):
    torch.manual_seed(5)
    resnet = ResNetModel(ResNetConfig(**TINY_VISION))
    bert = BertModel(BertConfig(**TINY_TEXT), add_pooling_layer=False)
    resnet.save_pretrained(tmp_path / "resnet")
    bert.save_pretrained(tmp_path / "bert")
    model = tiny_model(vision_checkpoint=str(tmp_path / "resnet"), text_checkpoint=str(tmp_path / "bert"))
    torch.testing.assert_close(
        model.vision.embedder.embedder.convolution.weight, resnet.embedder.embedder.convolution.weight
    )
    torch.testing.assert_close(
        model.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight
    )


def test_missing_checkpoint_and_bad_task_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vision_checkpoint"):
        ModelConfig(heads=HEADS, vision_checkpoint=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="heads is empty"):
        ModelConfig()
    model = tiny_model()
    px, ids, att = batch()
    with pytest.raises(KeyError, match="unknown task 'frameqa'"):
        model(px, ids, att, "frameqa")
    with pytest.raises(ValueError, match=r"needs input_ids \[V, M, L\]"):
        model(px, ids, att, "mc")


@pytest.mark.parametrize("freeze_at", [0, 1, 2])
def test_freeze_at_fixes_the_stem_and_first_stage_weights_and_batchnorm_statistics(freeze_at):
    """detectron2's FREEZE_AT as ClipBERT uses it: the frozen ResNet parts keep their weights and their BN
    statistics through a training step in train mode; everything else moves."""
    model = tiny_model(freeze_at=freeze_at, stem="small")
    parts = {"stem": model.vision.embedder, "stage1": model.vision.encoder.stages[0],
             "stage2": model.vision.encoder.stages[1]}  # fmt: skip
    frozen = list(parts)[:freeze_at]
    before = {k: {n: t.clone() for n, t in m.state_dict().items()} for k, m in parts.items()}
    model.train()
    assert all(m.training == (k not in frozen) for k, m in parts.items())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    px, ids, mask = batch(v=4)
    model(px, ids, mask, "oe").logits.square().mean().backward()
    opt.step()
    for k, m in parts.items():
        after = m.state_dict()
        moved = {n for n, t in after.items() if t.is_floating_point() and not torch.equal(t, before[k][n])}
        if k in frozen:
            assert not moved, f"{k} is frozen but {sorted(moved)} changed"
            assert all(p.grad is None for p in m.parameters())
        else:  # weights and running statistics both move
            assert any("running_mean" in n for n in moved) and any(n.endswith("weight") for n in moved)
    with pytest.raises(ValueError, match="freeze_at"):
        ModelConfig(heads=HEADS, freeze_at=3)
