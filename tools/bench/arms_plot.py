"""The loss curves and val PSNR of a ``tools.bench.batch_scaling`` result, one line per arm.

    python -m tools.bench.arms_plot benchmarks/results/batch-scaling/epyc-cpu-P-precision-schedule.json \
        --out docs/img/cpu-trainer-arms.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def arm_settings(arm: dict) -> tuple[str | None, bool]:
    """An arm's own precision (None: the config's) and whether its rate stays constant (the
    tool's default schedule anneals)."""
    own = dict(item.split("=", 1) for item in arm["own"])
    constant = own.get("train.lr_schedule") == "step" and own.get("train.lr_decay_at") == "1.0"
    return own.get("train.precision"), constant


def label(arm: dict) -> str:
    precision, constant = arm_settings(arm)
    return f"{precision or 'default precision'}, {'constant rate' if constant else 'annealed (cosine)'}"


def plot(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in result["arms"] if a["loss_curve"]]
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for arm in arms:
        steps, losses = zip(*arm["loss_curve"])
        loss_ax.plot(steps, losses, label=label(arm), lw=1, alpha=0.7)
        points = arm["val_psnr"]
        val_ax.plot([p["samples"] for p in points], [p["psnr"] for p in points], marker="o", label=label(arm))
    loss_ax.set(title="training loss (Charbonnier, logged steps)", xlabel="step", ylabel="loss")
    val_ax.set(title=f"val PSNR ({result['config']})", xlabel="samples", ylabel="dB")
    val_ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("result", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    print(plot(json.loads(args.result.read_text()), args.out))


if __name__ == "__main__":
    main()
