"""Does the frequency latent's learned log-variance carry signal? (issue 14: no KL term)

    python -m tools.uncertainty.latent_signal --limit 20

Prints, over val faces at 16 and 32 px: the range of logvar, the sampling std
exp(logvar / 2) against the spread of the mean mu across positions, how much the tokens
move when z is drawn, and whether the per-position sampling std tracks the SR error.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from arasfsr import load_model
from arasfsr.models.core import normalise
from arasfsr.data import resolve_data_root
from arasfsr.protocols import TestRow, list_faces, load_ground_truth, make_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model("arasfsr").model
    faces = list_faces(resolve_data_root(), "utkface/val", args.limit)
    for lr_side in (16, 32):
        lvs, sig_over_mu, tok_move, rhos = [], [], [], []
        for path in faces:
            gt = load_ground_truth(path, "utkface/val")
            lr, hr = make_pair(gt, TestRow("utkface/val", lr_side, 128))
            x = normalise(torch.from_numpy(np.array(lr)).permute(2, 0, 1).float().unsqueeze(0) / 255)
            with torch.inference_mode():
                tokens, mu, logvar = model.frequency(x, sample=False)
                torch.manual_seed(0)
                drawn = [model.frequency(x, sample=True)[0] for _ in range(8)]
                sr = model.render(x * 0.5 + 0.5, (128, 128), precision="auto").clamp(0, 1)
            lvs.append(logvar.flatten())
            sigma = torch.exp(0.5 * logvar)
            sig_over_mu.append(float(sigma.mean() / mu.std(dim=(2, 3)).mean()))
            tok_move.append(float(torch.stack(drawn).std(0).mean() / tokens.std(dim=(2, 3)).mean()))
            err = (sr - torch.from_numpy(np.array(hr)).permute(2, 0, 1).float().unsqueeze(0) / 255).abs().mean(1, keepdim=True)
            err_lr = F.adaptive_avg_pool2d(err, lr_side).flatten()
            rhos.append(spearmanr(sigma.mean(1).flatten(), err_lr)[0])
        lv = torch.cat(lvs)
        print(f"LR {lr_side}: logvar min {lv.min():.2f} max {lv.max():.2f} mean {lv.mean():.2f}; "
              f"sigma = exp(logvar/2) in [{torch.exp(0.5 * lv.min()):.3f}, {torch.exp(0.5 * lv.max()):.3f}]")
        print(f"  mean sigma / spatial std of mu: {np.mean(sig_over_mu):.3f}; "
              f"token std under sampling / spatial std of tokens: {np.mean(tok_move):.4f}; "
              f"Spearman(sigma per LR position, SR |error| pooled to LR grid): {np.mean(rhos):.3f}")


if __name__ == "__main__":
    main()
