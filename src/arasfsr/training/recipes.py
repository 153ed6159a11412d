"""Per-architecture training recipes: where a model's authors trained it differently.

A recipe is data beside the model, not a branch in the trainer: a set of config values
keyed by architecture, applied over the protocol and tier (``training.config.load_config``
merges it after the config file, before ``--set`` overrides, so a command line can still
change it).
The resolved config and the model card record which recipe was applied.

Architectures without a recipe train with the defaults: the ARASFSR/LIIF recipe of the
paper (Charbonnier loss, Adam 1e-4 with the default betas, queried pixels).
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # SPARNet (Chen et al., TIP 2021). Confirmed in the authors' public code
    # (github.com/chaofengc/Face-SPARNet): train.sh (--lr 0.0002 --beta1 0.9 --batch_size 32
    # --total_epochs 20), models/sparnet_model.py (nn.L1Loss on the whole 128x128 output,
    # Adam betas (beta1, 0.99)), train.py (update_learning_rate commented out: the rate stays
    # constant), data/celeba_dataset.py (random horizontal flip, then Scale((1.0, 1.3)), which
    # always takes torchvision's RandomResizedCrop(scale=(0.7, 1), ratio=(3/4, 4/3)) branch,
    # bicubic, of the HR face; the LR is made from that crop). The paper's own text was not
    # available to check these against.
    "sparnet": {
        "source": "SPARNet authors' code: L1 on all pixels, Adam 2e-4 betas (0.9, 0.99), batch 32, "
                  "constant rate, flip + RandomResizedCrop(0.7-1, 3/4-4/3)",
        "data": {"sample_q": None, "crop_aug": {"scale": [0.7, 1.0], "ratio": [0.75, 4 / 3]}},
        "train": {"loss": "l1", "lr": 2.0e-4, "betas": [0.9, 0.99], "batch_size": 32, "lr_gamma": 1.0},
    },
}


def recipe_for(arch: str) -> dict[str, Any] | None:
    """The recipe of an architecture (``source`` and config sections), or None."""
    return RECIPES.get(arch)

