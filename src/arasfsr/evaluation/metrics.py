"""Image quality by the authors' metric: PSNR and SSIM on the Y channel, whole image.

The metric is theirs (``psnr_ssim_*_new.py``: the same Y, PSNR and SSIM on two PNGs); the
SR image it reads is not quantised as theirs is: we round the model's output to 8 bits,
their ``ToPILImage`` truncates. On identical float outputs that moves PSNR by -0.29 to
+0.33 dB depending on model and row (docs/fidelity.md, measured), SSIM by < 0.0002.

- Y of YCbCr (ITU-R BT.601, studio range): ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)``
  with R, G, B in [0, 1] (i.e. the 8-bit values divided by 255), truncated to uint8.
- PSNR: ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=255``.
- SSIM: ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform window,
  sample covariance; data range 255 from the uint8 type).
- SSIM (MATLAB-style): the same function with a Gaussian window (sigma 1.5),
  ``use_sample_covariance=False``, ``data_range=255`` (Wang et al.'s reference settings).
No border is shaved.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
METRICS = ("psnr", "ssim", "ssim_matlab")
DEFINITIONS = {
    "y": "Y = 16 + RGB/255 . [65.481, 128.553, 24.966] (BT.601), truncated to uint8, whole image",
    "psnr": "skimage.metrics.peak_signal_noise_ratio(hr_y, sr_y, data_range=255)",
    "ssim": "skimage.metrics.structural_similarity(hr_y, sr_y) with defaults (7x7 uniform window)",
    "ssim_matlab": "structural_similarity(hr_y, sr_y, gaussian_weights=True, sigma=1.5, "
                   "use_sample_covariance=False, data_range=255)",
}


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW uint8 Y (BT.601, 16..235), truncated like the authors' code."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8, got {img.shape} {img.dtype}")
    y = 16.0 + (img.astype(np.float64) / 255.0) @ Y_WEIGHTS
    return y.astype(np.uint8)


def face_metrics(sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and MATLAB-style SSIM of one super-resolved face against its HR."""
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in size")
    sr_y, hr_y = rgb_to_y(sr), rgb_to_y(hr)
    with np.errstate(divide="ignore"):  # identical images: PSNR is infinite, not an error
        psnr = float(peak_signal_noise_ratio(hr_y, sr_y, data_range=255))
    return {
        "psnr": psnr,
        "ssim": float(structural_similarity(hr_y, sr_y)),
        "ssim_matlab": float(structural_similarity(hr_y, sr_y, gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False, data_range=255)),
    }
