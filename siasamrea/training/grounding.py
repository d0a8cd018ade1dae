"""Visual grounding: the tiny ResNet taught to name what each still shows, before the init stage.

On the ``stills`` set every video is one scene (a coloured shape, 1–3 copies, in one region) whose caption
(the ``description`` column) states all four attributes. :func:`run_probe` trains the model's own ResNet
with the grid mean-pooled and one linear head per attribute (colour, shape, number, location) -- no text, no
fusion -- and reports the held-out accuracy per attribute and epoch.

Two uses:

* **Grounding the init stage** (``init.grounding`` in the profile; :func:`ground`): ClipBERT's visual backbone
  starts from grid features pretrained on Visual Genome object and *attribute* labels; ours starts from
  random weights and, trained only through a randomly initialised fusion, can lose colour before the fusion
  learns to ask for it (measured: an init run whose ResNet grid decodes colour at 38% by a linear probe, while
  shape reaches 98%; README, "Does the model see?"). Training the ResNet on the stills' caption attributes
  first is this benchmark's stand-in for that pretraining; the init stage then starts from those weights.
* **A diagnostic** (``python -m siasamrea.training.grounding``): if this probe learns an attribute and the
  full model does not, the loss is on the way from the features to the answer (fusion, supervision), not in
  the pixels
  or the backbone.

    python -m siasamrea.training.grounding --stills data/synthetic/stills \
        --cache data/synthetic/cache/stills --epochs 8 --lr 1e-3
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import ResNetConfig, ResNetModel

from siasamrea.data.frames import CachedFrames
from siasamrea.method.model import IMAGENET_MEAN, IMAGENET_STD, TINY_VISION, use_small_stem
from siasamrea.synthetic.tasks import NUMBER_WORDS, REGIONS

ATTRIBUTES = ("color", "shape", "number", "location")


def parse_description(text: str) -> dict[str, str]:
    """``"two orange squares appear at the bottom ."`` -> colour, shape, number and location.

    Raises ``ValueError`` naming the text if it is not a stills caption.
    """
    words = text.split()
    try:
        count, color, noun = words[0], words[1], words[2]
        location = words[words.index("the") + 1]
    except (IndexError, ValueError):
        raise ValueError(f"not a stills description: {text!r}") from None
    number = "one" if count == "a" else count
    if number not in NUMBER_WORDS or location not in REGIONS:
        raise ValueError(f"not a stills description: {text!r}")
    shape = noun
    if number != "one":  # plural: crosses -> cross, squares -> square
        shape = noun[:-2] if noun.endswith("es") and noun[:-2].endswith(("s", "x", "sh", "ch")) else noun[:-1]
    return {"color": color, "shape": shape, "number": number, "location": location}


def load_stills(
    stills_root: str | Path, cache_dir: str | Path, split: str
) -> tuple[torch.Tensor, list[dict]]:
    """The first frame and the attributes of every still of ``split`` (``"Train"`` / ``"Test"``).

    Returns ``uint8 [S, H, W, 3]`` frames and S attribute dicts.
    """
    root = Path(stills_root)
    path = root / f"{split}_frameqa_question.csv"
    captions: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            captions.setdefault(row["gif_name"], row["description"])
    if not captions:
        raise ValueError(f"{path}: no stills")
    cache = CachedFrames(cache_dir)
    first = torch.zeros(1, dtype=torch.long)
    frames = torch.stack([cache.read(root / "mp4" / f"{name}.mp4", first)[0] for name in captions])
    return frames, [parse_description(c) for c in captions.values()]


class VisionProbe(nn.Module):
    """ResNet -> grid mean -> one linear head per attribute. ``forward``: ``uint8 [S, H, W, 3]`` -> logits."""

    def __init__(self, classes: dict[str, list[str]], vision: dict | None = None, stem: str = "imagenet"):
        super().__init__()
        self.resnet = ResNetModel(ResNetConfig(**(vision or TINY_VISION)))
        if stem == "small":
            use_small_stem(self.resnet)
        width = self.resnet.config.hidden_sizes[-1]
        self.heads = nn.ModuleDict({a: nn.Linear(width, len(c)) for a, c in classes.items()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (frames.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        pooled = self.resnet(x).last_hidden_state.mean(dim=(2, 3))  # [S, C]
        return {a: head(pooled) for a, head in self.heads.items()}


def run_probe(
    train: tuple[torch.Tensor, list[dict]],
    test: tuple[torch.Tensor, list[dict]],
    epochs: int = 8,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    vision: dict | None = None,
    stem: str = "imagenet",
) -> tuple[list[dict[str, float]], VisionProbe]:
    """Train on every attribute of every training still; held-out accuracy per attribute and epoch, and the
    trained probe."""
    torch.manual_seed(seed)
    classes = {a: sorted({y[a] for y in train[1]}) for a in ATTRIBUTES}

    def labels(ys):
        return {a: torch.tensor([classes[a].index(y[a]) for y in ys]) for a in ATTRIBUTES}

    (xtr, ytr), (xte, yte) = (train[0], labels(train[1])), (test[0], labels(test[1]))
    model = VisionProbe(classes, vision, stem)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xtr)).split(batch_size):
            out = model(xtr[idx])
            loss = sum(nn.functional.cross_entropy(out[a], ytr[a][idx]) for a in ATTRIBUTES)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(xte)
        history.append({a: float((out[a].argmax(1) == yte[a]).float().mean()) for a in ATTRIBUTES})
    return history, model


def ground(
    stills_root: str | Path,
    cache_dir: str | Path,
    out_dir: str | Path,
    *,
    vision: dict,
    stem: str,
    epochs: int,
    lr: float,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Train the ResNet on the stills' caption attributes and save it where ``model.init_from`` reads it:
    ``out_dir/model.safetensors`` (the ResNet's tensors under ``vision.``, as in :class:`ClipBertVQA`) and
    ``out_dir/config.json``; ``out_dir/grounding.json`` holds the held-out accuracy per epoch."""
    train, test = (load_stills(stills_root, cache_dir, split) for split in ("Train", "Test"))
    history, probe = run_probe(train, test, epochs, lr, seed=seed, vision=vision, stem=stem)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"vision.{k}": v.contiguous() for k, v in probe.resnet.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"heads": {}, "grounding": {"vision": vision, "stem": stem}}))
    (out / "grounding.json").write_text(json.dumps({"epochs": history}, indent=1))
    return history


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m siasamrea.training.grounding", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--stills", required=True, help="the stills folder (Train/Test_frameqa_question.csv, mp4/)"
    )
    p.add_argument("--cache", required=True, help="its decoded-frame cache (python -m siasamrea.data cache)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=None, help="torch's intra-op threads (default: torch's own choice)"
    )
    p.add_argument(
        "--vision",
        type=json.loads,
        default={},
        help="ResNet settings (JSON) over TINY_VISION, e.g. '{\"hidden_sizes\": [16, 32, 64]}'",
    )
    p.add_argument("--stem", default="imagenet", choices=("imagenet", "small"), help="the ResNet's stem")
    p.add_argument(
        "--out",
        help="save the grounded ResNet here, where model.init_from reads it (as the "
        "init stage does); without it, only the held-out accuracy per epoch is printed",
    )
    args = p.parse_args(argv)
    if args.threads:  # two groundings side by side on two cores: one thread each (the init stage's draws)
        torch.set_num_threads(args.threads)
    vision = {**TINY_VISION, **args.vision}
    if args.out:
        history = ground(args.stills, args.cache, args.out, vision=vision, stem=args.stem, epochs=args.epochs,
                         lr=args.lr, seed=args.seed)  # fmt: skip
    else:
        train = load_stills(args.stills, args.cache, "Train")
        test = load_stills(args.stills, args.cache, "Test")
        history, _ = run_probe(train, test, args.epochs, args.lr, seed=args.seed, vision=vision,
                               stem=args.stem)  # fmt: skip
    for epoch, accs in enumerate(history, 1):
        print(json.dumps({"epoch": epoch, **{a: round(v, 4) for a, v in accs.items()}}), flush=True)


if __name__ == "__main__":
    main()
