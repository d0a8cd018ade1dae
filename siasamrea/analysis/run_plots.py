"""Small plots the stage notebooks show: training curves of a run, frame-length histograms of the data."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd


def training_curves(run_dir: str | Path):
    """Loss terms against step (log.csv) and every evaluation metric against epoch (epochs.csv)."""
    d = Path(run_dir)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    log = pd.read_csv(d / "log.csv")
    for col in ("loss", "loss_gt", "loss_siamese", "loss_weights"):
        if col in log and log[col].abs().sum() > 0:
            axes[0].plot(log["step"], log[col], label=col)
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    axes[0].legend(fontsize=8)
    epochs = pd.read_csv(d / "epochs.csv")
    for col in epochs.columns:
        if col.count("_") <= 3 and col.endswith(("_acc", "_mse")) and col not in ("epoch", "step"):
            axes[1].plot(epochs["epoch"], epochs[col], marker="o", label=col)
    axes[1].set(xlabel="epoch", title="evaluation (anchor clip only)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def frame_lengths(params: dict):
    """Histogram of video lengths per dataset, with the pretraining filter's threshold."""
    data = params["data"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, d in data["datasets"].items():
        ev = Path(d.get("evidence") or "")
        if not ev.is_file():
            continue
        lengths = [json.loads(line)["num_frames"] for line in ev.read_text().splitlines() if line.strip()]
        ax.hist(lengths, bins=30, alpha=0.5, label=f"{name} ({len(lengths)} videos)")
    ax.axvline(data["min_frames"], color="k", linestyle="--", label=f"filter: {data['min_frames']} frames")
    ax.set(xlabel="frames per video", ylabel="videos", title="video lengths (synthetic benchmark)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
