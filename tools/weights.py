"""Where a named model's weights belong in this checkout: the package's ``weights/`` holds the
models the wheel ships (the default model and bicubic), the repository's ``weights/research/``
the rest; ``weights/research.json`` in the package names those, for installations without them."""

from __future__ import annotations

import json
from pathlib import Path

from arasfsr.atomic import atomic_write_text
from arasfsr.checkpoint import read_card
from arasfsr.registry import RESEARCH_DIR, WEIGHTS_DIR, shipped_weights


def weights_file(name: str, folder: Path | str | None = None) -> Path:
    """``folder/NAME.safetensors``; without a folder, where the model's weights are now, and a
    model not shipped yet goes with the research models."""
    if folder is not None:
        return Path(folder) / f"{name}.safetensors"
    return shipped_weights(name) or RESEARCH_DIR / f"{name}.safetensors"


def research_manifest() -> dict[str, str]:
    """The research models' names and descriptions, from their cards."""
    return {path.stem: str(read_card(path).get("description", "")) for path in sorted(RESEARCH_DIR.glob("*.safetensors"))}


def write_research_manifest() -> Path:
    """Rewrite the package's ``weights/research.json`` from ``weights/research/``."""
    return atomic_write_text(WEIGHTS_DIR / "research.json", json.dumps(research_manifest(), indent=1) + "\n")


def retrained_since(results: dict) -> list[str]:
    """The models an ``arasfsr eval`` or ``eval-uncertainty`` results.json scored whose
    weights have changed since (their recorded SHA-256 is not the shipped file's)."""
    from arasfsr.evaluation.runner import weights_sha256

    entries = results.get("models") or [{"name": results.get("model"), "sha256": results.get("sha256")}]
    changed = []
    for entry in entries:
        recorded = entry.get("sha256")
        if recorded and shipped_weights(entry["name"]) is not None and weights_sha256(entry["name"]) != recorded:
            changed.append(entry["name"])
    return changed


def with_overwrite(command: str) -> str:
    """The command that wrote a result, able to write it again over the old one."""
    return command if "--overwrite" in command.split() else command + " --overwrite"


def retrained_note(results: dict, rerun: str) -> str:
    """A sentence for a table whose models were retrained after it was measured ('' if none)."""
    changed = retrained_since(results)
    if not changed:
        return ""
    names = ", ".join(f"`{n}`" for n in changed)
    return (f"These numbers are of earlier weights of {names}, retrained since (its card's `sessions`); "
            f"re-measure with `{rerun}`.")
