"""Faces in whole photos: detect (optional extra ``arasfsr[faces]``), align to the UTKFace
framing, super-resolve, paste back. Alignment and paste-back need no detector."""

from .align import TEMPLATE, alignment_matrix, feather_mask, paste, similarity, warp
from .detect import Face, FacesUnavailable, load_detector
from .restore import RestoredFace, RestoreResult, restore, side_by_side_picture

__all__ = ["TEMPLATE", "Face", "FacesUnavailable", "RestoreResult", "RestoredFace", "alignment_matrix",
           "feather_mask", "load_detector", "paste", "restore", "side_by_side_picture", "similarity", "warp"]
