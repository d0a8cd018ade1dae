"""A real learning check: a tiny model fits a handful of random videos with the full SiaSamRea loss."""

import pytest
import torch

from siasamrea.method.losses import SiaSamReaLoss
from siasamrea.method.model import ClipBertVQA, ModelConfig
from siasamrea.method.reasoning import SiameseReasoner
from siasamrea.method.sampling import siamese_sample


def random_videos(num_videos=6, length=30, size=32, seed=0):
    """Each video: its own random colour pattern plus per-frame noise; one label per video."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (num_videos, 1, size // 8, size // 8, 3), generator=g).float()
    base = base.repeat_interleave(8, 2).repeat_interleave(8, 3)
    noise = torch.randn(num_videos, length, size, size, 3, generator=g) * 20
    return (base + noise).clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("kind", ["open_ended", "multiple_choice", "count"])
def test_tiny_model_overfits_a_few_videos(kind):
    torch.manual_seed(0)
    v, n, b, k = 6, 4, 3, 6
    videos = random_videos(v)
    heads = {"t": {"kind": kind, "num_answers": k}}
    model = ClipBertVQA(ModelConfig(heads=heads))
    objective = SiaSamReaLoss(SiameseReasoner(n, model.hidden_size))
    opt = torch.optim.AdamW([*model.parameters(), *objective.parameters()], lr=2e-3)
    if kind == "multiple_choice":
        ids = torch.randint(5, 400, (1, 4, 6)).expand(
            v, -1, -1
        )  # same question and candidates for all videos
        target = torch.arange(v) % 4
    else:
        ids = torch.randint(5, 400, (1, 6)).expand(v, -1)  # same question: only the video tells the answer
        target = torch.arange(v) % k if kind == "open_ended" else (torch.arange(v) % 5).float() + 1
    att = torch.ones_like(ids)
    gen = torch.Generator().manual_seed(1)

    def clips(num_clips):
        idx = torch.stack([siamese_sample(30, num_clips, b, gen) for _ in range(v)])  # [V, N, B]
        return videos[torch.arange(v)[:, None, None], idx]  # [V, N, B, H, W, 3]

    losses = []
    for _ in range(60):
        res = objective(model(clips(n), ids, att, "t"), target)
        opt.zero_grad()
        res.total.backward()
        opt.step()
        losses.append(float(res.total.detach()))
    assert losses[-1] < 0.25 * losses[0]

    model.eval()
    with torch.no_grad():
        pred = model.predict(clips(1)[:, 0], ids, att, "t")  # fresh anchors, anchor-only inference
    if kind == "count":
        assert float((pred - target).abs().max()) < 0.5  # every count right after rounding
    else:
        assert torch.equal(pred.argmax(-1), target)
