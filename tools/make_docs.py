"""The docs' generated tables, filled from committed results: the model cards, results/eval,
results/fidelity and benchmarks' JSON files, and the code's own records (protocols, tiers).

    python -m tools.make_docs            # rewrite every generated block in README.md and docs/
    python -m tools.make_docs --check    # exit 1 and name the blocks that differ (tests/test_docs.py)

A block is the text between ``<!-- generated: NAME -->`` and ``<!-- end -->``; NAME is one of
:data:`BLOCKS`. Only numbers that come from such files are written here, each table with the
command that wrote its source; new figures go into a JSON first, then into a block.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tools import ROOT
from tools.bench.arms_plot import arm_settings
from tools.weights import retrained_note, retrained_since, with_overwrite

WEIGHTS = (ROOT / "src" / "arasfsr" / "weights").resolve()
EVAL = ROOT / "results" / "eval"
FIDELITY = ROOT / "results" / "fidelity"
BENCH = ROOT / "benchmarks" / "results"

MARK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end -->)", re.S)
BLOCKS: dict[str, Callable[[], str]] = {}


def block(fn: Callable[[], str]) -> Callable[[], str]:
    """Register ``fn`` as the block named after it (underscores become dashes)."""
    BLOCKS[fn.__name__.replace("_", "-")] = fn
    return fn


def doc_files() -> list[Path]:
    """README.md, CHANGELOG.md and every page under docs/ (the dated notes under docs/lab/ included)."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file()]


# --- helpers ---------------------------------------------------------------------------------


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` holds one letter per column, ``r`` for right-aligned."""
    header = list(header)
    marks = ["---:" if (align[i:i + 1] == "r") else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "∞"
    return f"{x:,.{digits}f}"


def signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def cards() -> dict[str, dict[str, Any]]:
    """The trained models' cards, by name, as the registry finds them (the package's weights and,
    in a checkout, the repository's research weights); ``in_wheel``: whether the package holds it."""
    from arasfsr.registry import list_models, resolve

    out = {}
    for name in list_models():
        entry = resolve(name)
        out[name] = {"name": name, **entry.card, "in_wheel": WEIGHTS in entry.weights.resolve().parents}
    return out


def eval_results(protocol: str) -> dict[str, Any] | None:
    path = EVAL / protocol / "results.json"
    return load(path) if path.is_file() else None


def psnr_of(results: dict[str, Any] | None, model: str, row: str) -> float | None:
    for r in (results or {}).get("results", []):
        if r["model"] == model and r["row"] == row:
            return r["psnr"]
    return None


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- models ----------------------------------------------------------------------------------

# The test row quoted for each protocol's models in the README's short table.
HEADLINE_ROW = {"A": "utkface/test bicubic 64-128", "B": "utkface/test bicubic 16-128",
                "C": "utkface/test nn-jpeg 64-128", "P": "utkface/test bicubic 16-128"}


def headline(card: dict[str, Any]) -> str:
    protocol = card.get("protocol")
    row = HEADLINE_ROW.get(protocol or "")
    results = eval_results(protocol) if protocol else None
    ours, bicubic = psnr_of(results, card["name"], row or ""), psnr_of(results, "bicubic", row or "")
    if ours is None or bicubic is None:
        return "-"
    info = next(r for r in results["rows"] if r["key"] == row)
    label = info["label"].replace("-", "→") + ("" if info["degradation"] == "bicubic" else f" {info['degradation']}")
    earlier = ", earlier weights" if card["name"] in retrained_since(results) else ""
    return f"{ours:.2f} / {bicubic:.2f} ({label}, {results['limit']} faces{earlier})"


@block
def models_readme() -> str:
    """The models a user picks by name: the paper tier and bicubic; the cpu tier in one line."""
    all_cards = cards()
    rows, small = [], []
    for name, card in sorted(all_cards.items(), key=lambda kv: (kv[0] != "arasfsr", kv[0])):
        if card.get("tier") in (None, "paper"):
            what = card.get("description", "") + ("" if card["in_wheel"] else "; in the repository only")
            params = num(card["parameters"], 0) if card.get("parameters") else "0"
            rows.append((f"`{name}`" + (" (default)" if name == "arasfsr" else ""), what, params, headline(card)))
        else:
            small.append(name)
    if small:
        sizes = [all_cards[n]["parameters"] for n in small]
        where = "" if all(all_cards[n]["in_wheel"] for n in small) else "; in the repository only"
        rows.append((f"{len(small)} `*-cpu` models", "smaller networks trained at the cpu tier for the "
                     f"paper's comparisons: LIIF, LTE, DIINN, SPARNet, the ablations, the authors' formulation{where}",
                     f"{num(min(sizes), 0)} to {num(max(sizes), 0)}", "[models](docs/models.md)"))
    return table(["model", "what", "parameters", "PSNR (dB) on utkface/test: model / bicubic"], rows, "llrl") + (
        "\nPSNR on Y, from `results/eval/*/results.json` (`arasfsr eval`, see [evaluation](docs/evaluation.md)).\n")


@block
def models() -> str:
    rows = []
    for name, card in sorted(cards().items(), key=lambda kv: (kv[0] != "arasfsr", kv[1].get("tier") != "paper", kv[0])):
        if card.get("arch") == "bicubic":  # no weights, nothing trained
            continue
        iters = card.get("iterations_total") or card.get("iterations")
        sessions = len(card.get("sessions", []))
        rows.append((f"`{name}`", "package" if card["in_wheel"] else "repository",
                     card.get("protocol", "-"), card.get("tier", "-"), num(card.get("parameters"), 0),
                     num(iters, 0) + (f" ({sessions} sessions)" if sessions > 1 else ""),
                     card.get("machine", "-"), num(card.get("val_psnr_best")), headline(card)))
    return table(["model", "weights in", "protocol", "tier", "parameters", "iterations", "last trained on", "val PSNR",
                  "test PSNR: model / bicubic"], rows, "llllrrlrl") + (
        "\nValidation PSNR is the training monitor (RGB, whole `utkface/val` faces at the protocol's central "
        "size), from the card; test PSNR is on Y, from `results/eval/*/results.json`. \"package\": the weights "
        "are in every installation; \"repository\": in a checkout of the repository only. "
        "`arasfsr models --info NAME` prints the whole card.\n")


def size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e5 else f"{nbytes} B"


@block
def weights_shipped() -> str:
    """What the wheel carries (src/arasfsr/weights, pyproject's package-data) and what stays in the
    repository (weights/research/), with their sizes on disk."""
    from arasfsr.registry import RESEARCH_DIR, research_models

    all_cards = cards()
    rows = [(f"`{name}`", card.get("description", ""), size((WEIGHTS / f"{name}.safetensors").stat().st_size))
            for name, card in sorted(all_cards.items(), key=lambda kv: (kv[0] != "arasfsr", kv[0])) if card["in_wheel"]]
    research = sorted(research_models())
    files = [RESEARCH_DIR / f"{name}.safetensors" for name in research]
    total = sum(f.stat().st_size for f in files if f.is_file())
    return table(["in the wheel", "what", "size"], rows, "llr") + (
        f"\nIn the repository only, `weights/research/`: {len(research)} research models, {size(total)} "
        f"({', '.join(f'`{n}`' for n in research)}).\n")


# --- protocols and tiers ---------------------------------------------------------------------


def _span(x: Any) -> str:
    return f"{x[0]}…{x[1]}" if isinstance(x, (tuple, list)) else str(x)


@block
def protocols_training() -> str:
    from arasfsr.protocols import PROTOCOLS

    rows = []
    for p in PROTOCOLS.values():
        if not p.models:
            continue
        t = p.train
        hr = f"HR {_span(t.hr_size)}" if t.hr_size is not None else f"×{_span(t.scale)}"
        if t.max_hr:
            hr += f", HR ≤ {t.max_hr}"
        rows.append((p.name, p.title.split(": ", 1)[-1], f"LR {_span(t.lr_size)}, {hr}", t.degradation,
                     ", ".join(p.models), f"{p.val.lr_size} → {p.val.hr_size} ({p.val.degradation})"))
    return table(["protocol", "what", "training sizes", "degradation", "models", "validation"], rows)


@block
def protocols_test() -> str:
    from arasfsr.protocols import PROTOCOLS

    rows = []
    for p in PROTOCOLS.values():
        cells = []
        for dataset in dict.fromkeys(r.dataset for r in p.rows):
            parts = [f"{r.lr}→{r.hr}" + (f" {r.degradation}" if r.degradation != "bicubic" else "")
                     + (f" ({r.note})" if r.note else "") for r in p.rows if r.dataset == dataset]
            cells.append(f"{dataset}: " + ", ".join(parts))
        rows.append((p.name, p.title.split(": ", 1)[-1], len(p.rows), "; ".join(cells)))
    return table(["protocol", "what", "rows", "test rows (LR → HR, square)"], rows, "llrl")


@block
def tiers() -> str:
    """The budget tiers as their files and the models' declared sizes make them (ARASFSR, protocol A)."""
    from arasfsr.models import create_model
    from arasfsr.registry import check_config
    from arasfsr.training.config import load_config, model_spec

    rows = []
    for tier in ("smoke", "cpu", "paper"):
        cfg = load_config(f"{tier}/A-arasfsr")
        arch, config = model_spec(cfg)
        model = create_model(arch, **config)
        hidden = check_config(arch, config)["hidden"]
        freq = model.frequency
        nets = (f"EDSR {len(model.encoder.body) - 1}×{model.encoder.out_dim}, MLP {hidden[0]}×{len(hidden)}, "
                f"frequency module {check_config(arch, config)['frequency_width']} wide" if freq is not None else "")
        faces = f"{cfg['data']['limit']} faces" if cfg["data"]["limit"] else "all"
        rows.append((f"`{tier}`", nets, cfg["train"]["batch_size"], cfg["data"]["sample_q"],
                     num(cfg["train"]["iterations"], 0), faces, cfg["val"]["count"], cfg["data"]["num_workers"],
                     num(sum(p.numel() for p in model.parameters()), 0)))
    return table(["tier", "networks (ARASFSR)", "batch", "queries a face", "iterations", "training faces",
                  "validation faces", "loader workers", "parameters (A-arasfsr)"], rows, "llrrrlrrr")


TIER_MODELS = ("arasfsr", "liif", "lte", "diinn", "arasfsr-L", "arasfsr-G", "arasfsr-S", "arasfsr-authors", "sparnet")


@block
def parameters() -> str:
    """Parameter counts of the training configs (protocol A; SPARNet: B), built from the code."""
    from arasfsr.models import create_model
    from arasfsr.training.config import load_config, model_spec

    rows = []
    for model in TIER_MODELS:
        protocol = "B" if model == "sparnet" else "A"
        counts = []
        for tier in ("smoke", "cpu", "paper"):
            arch, config = model_spec(load_config(f"{tier}/{protocol}-{model}"))
            counts.append(num(sum(p.numel() for p in create_model(arch, **config).parameters()), 0))
        rows.append((f"`{protocol}-{model}`", *counts))
    return table(["config", "smoke", "cpu", "paper"], rows, "lrrr")


# --- evaluation ------------------------------------------------------------------------------


def latest_session(model: str) -> tuple[str, dict[str, Any]]:
    """The newest device session's full-test results of ``model`` (every row of its protocol on
    every face; a CPU background session's folder holds only ``val/`` and ``test/``)."""
    folders = [f for f in sorted((EVAL / "sessions").glob(f"*-{model}")) if (f / "results.json").is_file()]
    folder = folders[-1]
    return folder.name.split("-", 1)[0], load(folder / "results.json")  # 20261126T2353


def later_cpu_sessions(model: str, after: str) -> list[tuple[str, dict[str, Any]]]:
    """The background (CPU) sessions of ``model`` that shipped after session ``after``: their
    full-test 16->128 results (``test/results.json``)."""
    return [(f.name.split("-", 1)[0], load(f / "test" / "results.json"))
            for f in sorted((EVAL / "sessions").glob(f"*-{model}"))
            if f.name.split("-", 1)[0] > after and (f / "test" / "results.json").is_file()]


@block
def full_test() -> str:
    """Bicubic and the default model on every test face, from the session that shipped it,
    and the 16->128 row of the CPU sessions that continued it since."""
    session, d = latest_session("arasfsr")
    last = cards()["arasfsr"]["sessions"][-1]["date"]  # 2026-11-26T23:53:36+00:00
    later = later_cpu_sessions("arasfsr", session)
    newest = later[-1][0] if later else session
    if last.replace("-", "").replace(":", "")[:13] != newest:
        raise SystemExit(f"results/eval/sessions: no results of the shipped arasfsr's session ({last})")
    by = {(r["model"], r["row"]): r for r in d["results"]}
    rows = []
    for row in d["rows"]:
        b, m = by[("bicubic", row["key"])], by[("arasfsr-new", row["key"])]
        deg = "" if row["degradation"] == "bicubic" else f", {row['degradation']}"
        rows.append((f"{row['dataset']}{deg}", row["label"], b["count"], f"{b['psnr']:.4f}", f"{b['ssim']:.4f}",
                     f"{b['ssim_matlab']:.4f}", f"**{m['psnr']:.4f}**", f"**{m['ssim']:.4f}**"))
    text = table(["set", "row", "faces", "bicubic PSNR", "bicubic SSIM", "bicubic SSIM (MATLAB)", "`arasfsr` PSNR",
                  "`arasfsr` SSIM"], rows, "llrrrrrr") + (
        f"\nThe default model as shipped by its training session {session}, evaluated on "
        f"{d['device'].split(':')[0]} (`arasfsr eval --protocol P`, all faces, fp32; "
        f"`{rel(next((EVAL / 'sessions').glob(f'{session}-arasfsr')) / 'results.json')}`).\n")
    for stamp, t in later:
        by = {(r["model"], r["row"]): r for r in t["results"]}
        key = t["rows"][0]["key"]
        b, m = by[("bicubic", key)], by[("arasfsr-new", key)]
        text += (f"\nContinued since on a CPU by the background trainer (session {stamp}): on the "
                 f"{t['rows'][0]['label'].replace('-', '→')} row of all {b['count']:,} faces it scores "
                 f"{m['psnr']:.4f} dB PSNR and {m['ssim']:.4f} SSIM ({m['psnr'] - b['psnr']:+.3f} dB over bicubic; "
                 f"`{rel(EVAL / 'sessions' / f'{stamp}-arasfsr' / 'test' / 'results.json')}`); the table above is "
                 "of the weights before it (the whole protocol on every face takes hours on a CPU).\n")
    return text


def real_comparison(folder: str) -> str:
    """bicubic, the default and arasfsr-real on the rows of ``results/eval/FOLDER``, with
    arasfsr-real's margins over both; the command that wrote it under the table."""
    d = load(EVAL / folder / "results.json")
    by = {(r["model"], r["row"]): r for r in d["results"]}
    rows = []
    for row in d["rows"]:
        b, m, r = (by[(name, row["key"])] for name in ("bicubic", "arasfsr", "arasfsr-real"))
        rows.append((f"{row['dataset']} {row['degradation']} {row['lr_size'][0]}-{row['hr_size'][0]}", b["count"],
                     f"{b['psnr']:.2f}", f"{m['psnr']:.2f}", f"{r['psnr']:.2f}", f"{r['psnr'] - b['psnr']:+.2f}",
                     f"{r['psnr'] - m['psnr']:+.2f}"))
    models = " ".join(m["name"] for m in d["models"] if m["name"] != "bicubic")
    command = (f"arasfsr eval --protocol {d['protocol']} --model {models}"
               + ("" if d.get("tier", "custom") == "custom" else f" --tier {d['tier']}")
               + f" --limit {d['limit']} --out {rel(EVAL / folder)} --no-pictures")
    note = retrained_note(d, with_overwrite(command))
    return table(["row", "faces", "bicubic", "arasfsr", "arasfsr-real", "arasfsr-real − bicubic",
                  "arasfsr-real − arasfsr"], rows, "lrrrrrr") + (
        f"\n`{command}` (`{rel(EVAL / folder / 'results.md')}`).\n") + (f"\n{note}\n" if note else "")


@block
def realistic_subset() -> str:
    """Protocol R on 200 utkface/test and the 10 ffhq/test faces: arasfsr-real against both."""
    return real_comparison("R-real-200")


@block
def realistic_clean_rows() -> str:
    """Protocol P on 50 utkface/test and the 10 ffhq/test faces: arasfsr-real against both."""
    return real_comparison("P-real-50")


UNCERTAINTY_HEAD = ROOT / "src" / "arasfsr" / "uncertainty_head.json"


@block
def uncertainty_head() -> str:
    """The shipped estimator's formula, with its coefficients."""
    h = load(UNCERTAINTY_HEAD)
    c, eps = h["coefficients"], h["eps"]
    lo, hi = h["scale_range"]
    size = h.get("size")  # an optional factor for the output's size
    factor = f" · (d / {size['reference']:g})^{size['exponent']:.3f}" if size else ""
    where = (f", `d` the output's side (geometric mean of width and height, clamped to "
             f"{size['range'][0]:g}..{size['range'][1]:g} px)" if size else "")
    return (f"`u = {h['calibration']:.2f}{factor} · max(0, exp({c['const']:.3f} + {c['grad']:.3f}·log({eps:g} + "
            f"G(|∇ grey(SR)|)) + {c['added']:.3f}·log({eps:g} + G(|SR − B|)) + {c['log2_scale']:.3f}·log2 s) − 1)`, "
            f"with `B` the bicubic up-sampling of the input, `G` a Gaussian blur (σ = {h['sigma']:g} output px) "
            f"and `s` the scale (geometric mean of the two factors, clamped to {lo:g}..{hi:g}){where}; the numbers are "
            f"those of `{rel(UNCERTAINTY_HEAD)}`, which also records how they were fitted.\n")


@block
def uncertainty_calibration() -> str:
    d = load(EVAL / "uncertainty" / "results.json")
    rows = []
    for r in d["rows"]:
        e, b = r["estimator"], r["baseline"]
        rows.append((f"{r['row']['lr_size'][0]}→{r['row']['hr_size'][0]}", r["faces"],
                     f"**{e['rho_blk']:.3f}** / {b['rho_blk']:.3f}", f"**{e['auroc']:.3f}** / {b['auroc']:.3f}",
                     f"{e['rho_px']:.3f} / {b['rho_px']:.3f}",
                     f"{r['mean_map']:.2f} / {r['mean_error']:.2f}"))
    return table(["row", "faces", "ρ 8×8 block: map / baseline", "AUROC: map / baseline",
                  "ρ pixel: map / baseline", "mean map / mean actual error"], rows, "lrllll") + (
        f"\n`{d['command']}` ({d['model']}, {d['dataset']}; `{rel(EVAL / 'uncertainty' / 'results.json')}`).\n") + (
        "\n" + note + "\n" if (note := retrained_note(d, with_overwrite(d['command']))) else "")


# --- benchmarks: inference -------------------------------------------------------------------

SPEED_CPU_ENGINES = BENCH / "render-speed" / "xeon-64x512.json"
SPEED_CPU_UPSCALE = {"idle": BENCH / "render-speed" / "xeon-64x512-grid-idle.json",
                     "1 busy core": BENCH / "render-speed" / "xeon-64x512-grid-busy1.json"}
SPEED_CPU_LARGE = {"idle": BENCH / "render-speed" / "xeon-512x1024-grid-idle.json",
                   "1 busy core": BENCH / "render-speed" / "xeon-512x1024-grid-busy1.json"}
SPEED_CUDA = BENCH / "render-speed" / "h200.json"
SPEED_LTE_DIINN = BENCH / "render-speed" / "xeon-64x512-lte-diinn.json"
ENGINE_NAMES = {"reference": "reference", "fast-fp32": "fast fp32", "fast-bf16": "fast bf16", "onnx": "ONNX fp32",
                "upscale": "`upscale` (auto: bf16)"}


def made_by(*paths: Path) -> str:
    """Where results came from, as their provenance records it: the command (with the paths of
    its day), the machine, the date and the commit of each file."""
    parts = []
    for path in paths:
        p = load(path)["provenance"]
        commit = p["commit"].split("+")[0][:7] + ("+dirty" if p["commit"].endswith("+dirty") else "")
        parts.append(f"`{p['command']}` ({p['machine']}, {p['date'][:10]}, commit {commit}; `{rel(path)}`)")
    return "; ".join(parts)


@block
def speed_cpu_engines() -> str:
    d = load(SPEED_CPU_ENGINES)
    rows = [(r["model"], ENGINE_NAMES.get(r["engine"], r["engine"]), num(r["median_s"]), num(r["mpix_per_s"], 3),
             num(r["peak_mb"], 0), num(r["speedup"]), f"{r['max_abs_diff']:.1e}", num(r["psnr_vs_ref_db"], 1))
            for r in d["rows"]]
    return table(["model", "engine", "median s", "MP/s", "peak MB", "speed-up", "max diff", "PSNR vs ref (dB)"],
                 rows, "llrrrrrr") + f"\n64→512, one render, torch {d['env']['torch']}; {made_by(SPEED_CPU_ENGINES)}.\n"


@block
def speed_cpu_upscale() -> str:
    rows = []
    for label, path in SPEED_CPU_UPSCALE.items():
        d = load(path)
        ref = next(r for r in d["rows"] if r["engine"] == "reference")
        up = next(r for r in d["rows"] if r["engine"] == "upscale")
        rows.append((label, num(d["env"]["load_average_before"][0], 1), num(ref["median_s"]),
                     f"**{num(up['median_s'])}**", f"**×{up['speedup_vs_reference']:.2f}**",
                     num(up["psnr_vs_reference_db"], 1), num(up["peak_mb"], 0)))
    env = load(SPEED_CPU_UPSCALE["idle"])["env"]
    return table(["64→512, `arasfsr-a`", "load before", "reference s", "`upscale` s", "speed-up",
                  "PSNR vs reference (dB)", "peak MB"], rows, "lrrrrrr") + (
        f"\n{env['rounds']} rounds of {env['warmup']} warm-up + {env['repeats']} timed renders, each round in a fresh "
        f"process; {made_by(*SPEED_CPU_UPSCALE.values())}.\n")


@block
def speed_cpu_large() -> str:
    rows = []
    for label, path in SPEED_CPU_LARGE.items():
        this = next(r for r in load(path)["rows"] if "speedup_vs_baseline" in r)  # this code, not the baseline
        rows.append((label, num(this["median_s"]), num(this["peak_mb"], 0), len(this["times_s"])))
    return table(["512→1024, `arasfsr`, `upscale`", "median s", "peak MB", "renders"], rows, "lrrr") + (
        f"\n{made_by(*SPEED_CPU_LARGE.values())}.\n")


@block
def speed_cuda() -> str:
    d = load(SPEED_CUDA)
    rows = [(r["model"], f"{r['in']}→{r['out']}", r["engine"], num(r["median_s"] * 1000, 1), num(r["mpix_per_s"], 1),
             num(r["peak_mb"], 0), num(r["speedup"]), f"{r['max_abs_diff']:.1e}") for r in d["rows"]]
    return table(["model", "in→out", "engine", "median ms", "MP/s", "peak MB", "speed-up", "max diff"], rows,
                 "lllrrrrr") + (f"\nRandom-weight presets; peak = max CUDA memory allocated; {d['env']['device']}, "
                                f"torch {d['env']['torch']}; {made_by(SPEED_CUDA)}.\n")


@block
def speed_lte_diinn() -> str:
    d = load(SPEED_LTE_DIINN)
    rows = [(r["model"], ENGINE_NAMES.get(r["engine"], r["engine"]), num(r["median_s"]), num(r["speedup"]),
             num(r["psnr_vs_ref_db"], 1), num(r["peak_mb"], 0)) for r in d["rows"]]
    return table(["model", "engine", "median s", "speed-up", "PSNR vs ref (dB)", "peak MB"], rows, "llrrrr") + (
        f"\n64→512, random-weight presets; {made_by(SPEED_LTE_DIINN)}.\n")


# --- benchmarks: training --------------------------------------------------------------------

TRAIN_QUERY = {"idle": BENCH / "train-speed" / "xeon-cpu-query-idle.json",
               "1 busy core": BENCH / "train-speed" / "xeon-cpu-query-busy1.json"}
TRAIN_H100 = [BENCH / "train-speed" / "h100-A-batch64.json", BENCH / "train-speed" / "h100-P-batch64.json"]
TRAIN_FLOPS = BENCH / "train-flops" / "paper.json"
PARITY = BENCH / "parity" / "cpu.json"
BATCH_SCALING = [BENCH / "batch-scaling" / f"{name}.json" for name in ("cpu-A", "cpu-A-seed1", "cpu-P", "paper-P")]


@block
def train_speed_query() -> str:
    rows = []
    for label, path in TRAIN_QUERY.items():
        by: dict[str, dict[str, dict]] = {}
        for r in load(path)["results"]:
            by.setdefault(r["config"], {})[r["variant"]] = r
        for config, v in by.items():
            g, p = v["gathered"], v["projected"]
            fb = [r["profile"]["ms_per_step"]["forward"] + r["profile"]["ms_per_step"]["backward"] for r in (g, p)]
            rows.append((config, label, num(g["it_per_s"]), num(p["it_per_s"]), f"×{p['it_per_s'] / g['it_per_s']:.2f}",
                         f"{fb[0]:.0f} / {fb[1]:.0f}", f"{g['loss_mean']:.4f} ± {g['loss_sd']:.4f}",
                         f"{p['loss_mean']:.4f} ± {p['loss_sd']:.4f}"))
    return table(["config", "load", "gathered it/s", "projected it/s", "speed-up", "fwd + bwd ms", "loss: gathered",
                  "loss: projected"], rows, "llrrrrll") + f"\nOne thread per run; {made_by(*TRAIN_QUERY.values())}.\n"


TRAIN_CPU = [BENCH / "train-speed" / f"epyc-paper-{c}-today-vs-new-{load}.json"
             for c in ("P", "A") for load in ("idle", "busy1")]


@block
def train_speed_cpu() -> str:
    """The CPU training settings against the trainer before them (an older checkout), idle and busy."""
    rows = []
    for path in TRAIN_CPU:
        d = load(path)
        by = {r["variant"]: r for r in d["results"]}
        old, new = by["today"], by["new"]
        rows.append((old["config"], "1 busy core" if d["busy_core"] else "idle", num(old["it_per_s"], 3),
                     num(new["it_per_s"], 3), f"×{new['it_per_s'] / old['it_per_s']:.1f}",
                     num(new["it_per_s"] * new["batch_size"], 1)))
    first = load(TRAIN_CPU[0])["results"]
    return table(["config", "load", "before: steps/s", "CPU settings: steps/s", "speed-up", "faces/s"], rows,
                 "llrrrr") + (
        f"\nBefore: the trainer of an older checkout, `{' '.join(first[0]['overrides'])}`, {first[0]['precision']}; CPU settings: "
        f"`{' '.join(first[1]['overrides'])}`; batch {first[1]['batch_size']}, {first[1]['iterations']} steps each, "
        f"{first[1]['machine']}; {made_by(*TRAIN_CPU)}.\n")


H100_VARIANTS = {"today": "workers (the default data path)", "device": "device + fused Adam + channels-last",
                 "batch64": "the same at batch 64"}


def rate(lr: float) -> str:
    """1e-4, 4e-4: the rates as the commands spell them."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@block
def train_speed_h100() -> str:
    rows = []
    for path in TRAIN_H100:
        d = load(path)
        base = d["results"][0]["it_per_s"] * d["results"][0]["batch_size"]
        for r in d["results"]:
            ms = r["profile"]["ms_per_step"]
            rows.append((r["config"], H100_VARIANTS.get(r["variant"], r["variant"]), r["batch_size"], r["iterations"],
                         num(r["it_per_s"], 1), num(r["it_per_s"] * r["batch_size"], 0),
                         f"×{r['it_per_s'] * r['batch_size'] / base:.2f}", num(ms["data"], 1), num(ms["forward"], 1),
                         num(ms["backward"], 1), num(r.get("gpu_util_percent"), 0),
                         f"{r['loss_mean']:.4f} ± {r['loss_sd']:.4f}"))
    machine = load(TRAIN_H100[0])["results"][0]["machine"]
    return table(["config", "path", "batch", "steps", "it/s", "samples/s", "samples/s vs workers", "data ms",
                  "fwd ms", "bwd ms", "GPU busy %", "loss"], rows, "llrrrrrrrrrl") + (
        f"\n{machine}, bf16-mixed; loss: mean ± sd over the second half of the steps; {made_by(*TRAIN_H100)}.\n")


@block
def train_flops() -> str:
    by: dict[tuple, dict[str, float]] = {}
    for r in load(TRAIN_FLOPS)["rows"]:
        by.setdefault((r["config"], r["lr_size"], r["batch_size"], r["queries"]), {})[r["query"]] = r["tflop_per_step"]
    rows = [(c, lr, b, q, f"{v['gathered']:.3f}", f"{v['projected']:.3f}") for (c, lr, b, q), v in by.items()]
    return table(["config", "LR side", "batch", "queries a face", "gathered TFLOP/step", "projected TFLOP/step"],
                 rows, "lrrrrr") + (
        f"\nForward + backward, counted by PyTorch's `FlopCounterMode`; {made_by(TRAIN_FLOPS)}.\n")


@block
def parity() -> str:
    d = load(PARITY)
    worst_size = min(d["rows"], key=lambda r: r["interpolate_psnr"])["size"]
    identical = "identical to Pillow's at every size (no pixel differs)" if d["matrix_identical_everywhere"] else \
        "NOT identical to Pillow's at every size"
    return (f"On {d['faces']} `utkface/val` faces at every LR size from {d['sizes'][0]} to 96 and the HR sizes "
            f"{', '.join(str(s) for s in d['sizes'] if s > 96)}, the device path's bicubic is {identical}; "
            f"`F.interpolate(mode=\"bicubic\", antialias=True)` rounded to uint8 would give "
            f"{d['interpolate_mean_psnr_lr']:.1f} dB on average over the LR sizes ({d['interpolate_worst_psnr']:.1f} dB "
            f"at worst, at {worst_size}): one float pass, where Pillow rounds its two fixed-point passes, hence the "
            f"matrices. {made_by(PARITY)}.\n")


@block
def batch_scaling() -> str:
    rows = []
    for path in BATCH_SCALING:
        d = load(path)
        shipped = None
        for arm in d["arms"]:
            points = arm["val_psnr"]
            if arm["lr"] == 0:  # the shipped weights, scored before any step
                shipped = points[0]["psnr"]
                continue
            last = points[-1]
            rows.append((f"{d['config']}, seed {d['seed']}", arm["batch_size"], rate(arm["lr"]),
                         num(shipped, 3), num(last["samples"], 0), num(last["psnr"], 3),
                         signed(last["psnr"] - shipped) if shipped is not None else "-"))
    return table(["config", "batch", "rate", "shipped val PSNR", "faces seen", "val PSNR after", "change"], rows,
                 "lrrrrrr") + (
        "\nFine-tunes of the shipped weights for the same number of faces per arm, warm-up and EMA horizon the same "
        f"in faces; validation PSNR of the EMA weights on all 200 `utkface/val` faces; {made_by(*BATCH_SCALING)}.\n")


PRECISION_SCHEDULE = BENCH / "batch-scaling" / "epyc-cpu-P-precision-schedule.json"


@block
def cpu_precision_schedule() -> str:
    d = load(PRECISION_SCHEDULE)
    start = next(a for a in d["arms"] if a["lr"] == 0)["val_psnr"][0]["psnr"]
    arms = [a for a in d["arms"] if a["lr"] != 0]
    rows = []
    for arm in arms:
        precision, constant = arm_settings(arm)
        points = arm["val_psnr"]
        rows.append((precision or "-", "constant" if constant else "cosine anneal",
                     *(num(p["psnr"], 4) for p in points[:-1]), num(points[-1]["psnr"], 4),
                     signed(points[-1]["psnr"] - start), num(arm["final_loss_mean"], 5)))
    samples = [num(p["samples"], 0) for p in arms[0]["val_psnr"]]
    by_precision = {arm_settings(a)[0]: a for a in arms if not arm_settings(a)[1]}  # the annealed arms
    fp32, bf16 = by_precision.get("32-true"), by_precision.get("bf16-mixed")
    gap = max(abs(x[1] - y[1]) for x, y in zip(bf16["loss_curve"], fp32["loss_curve"])) if fp32 and bf16 else None
    return table(["precision", "schedule", *(f"val PSNR at {s}" for s in samples[:-1]), f"at {samples[-1]} faces",
                  "change", "loss, last half"], rows, "ll" + "r" * (len(samples) + 2)) + (
        f"\nFrom the same weights (val PSNR {num(start, 4)}) and the same faces in the same order, batch "
        f"{arms[0]['batch_size']}, 1e-4; the logged training losses of bf16-mixed and fp32 differ by at most "
        f"{num(gap, 5)}. {made_by(PRECISION_SCHEDULE)}.\n")


# --- fidelity --------------------------------------------------------------------------------


@block
def fidelity_rounding() -> str:
    d = load(FIDELITY / "rounding.json")
    labels = list(dict.fromkeys(r["label"] for r in d["results"]))
    by: dict[str, dict[str, dict]] = {}
    for r in d["results"]:
        by.setdefault(r["model"], {})[r["label"]] = r
    rows = [(f"`{m}`", *(signed(v[lab]["psnr_round"] - v[lab]["psnr_trunc"]) for lab in labels)) for m, v in by.items()]
    deltas = [r["psnr_round"] - r["psnr_trunc"] for r in d["results"]]
    ssim = max(abs(r["ssim_round"] - r["ssim_trunc"]) for r in d["results"])
    lo = min(d["results"], key=lambda r: r["psnr_round"] - r["psnr_trunc"])
    hi = max(d["results"], key=lambda r: r["psnr_round"] - r["psnr_trunc"])
    return table(["PSNR(Y) round − truncate, dB", *labels], rows, "l" + "r" * len(labels)) + (
        f"\nFrom {signed(min(deltas))} (`{lo['model']}` {lo['label']}) to {signed(max(deltas))} "
        f"(`{hi['model']}` {hi['label']}); SSIM moves by at most {ssim:.4f}. "
        f"{d['results'][0]['faces']} faces per row; {made_by(FIDELITY / 'rounding.json')}.\n")


@block
def fidelity_zsample() -> str:
    rows, paths = [], sorted(FIDELITY.glob("zsample-*.json"))
    for path in paths:
        d = load(path)
        for r in d["rows"]:
            rows.append((f"`{d['model']}`", r["label"], f"{r['faces']} × {r['seeds']}",
                         num(r["min_psnr_mean_vs_drawn_db"]), r["max_level_change"],
                         f"{r['max_abs_dpsnr_y_vs_truth_db']:.4f}"))
    return table(["model", "row", "faces × seeds", "min PSNR, mean z vs drawn z (dB)", "largest 8-bit change",
                  "largest change of PSNR(Y) vs truth (dB)"], rows, "llrrrr") + f"\n{made_by(*paths)}.\n"


@block
def fidelity_ties() -> str:
    rows, paths = [], (FIDELITY / "diinn-ties-val.json", FIDELITY / "diinn-ties-test.json")
    for path in paths:
        d = load(path)
        for r in d["rows"]:
            for ties, t in r["ties"].items():
                rows.append((d["split"], r["label"], r["faces"], f"{r['tie_rows']} of {r['hr_rows']}", f"`{ties}`",
                             t["rows_other_code"], f"{t['max_abs_diff']:.1e}", num(t["mean_psnr"], 3),
                             signed(t["mean_minus_up"]), f"{t['better_than_up']} / {t['worse_than_up']}"))
    return table(["faces from", "row", "faces", "output rows on a boundary", "ties", "rows read from another code",
                  "max diff (of 1)", "PSNR(Y)", "minus `up`", "faces better / worse than `up`"], rows,
                 "llrrlrrrrr") + f"\n`diinn-a-cpu`; {made_by(*paths)}.\n"


@block
def fidelity_authors() -> str:
    """The authors' formulation trained at arasfsr-a-cpu's budget against the control."""
    ours = eval_results("A")
    control = eval_results("A-control")
    name_c = control["models"][-1]["name"]
    rows = []
    for row in ours["rows"]:
        a = psnr_of(ours, "arasfsr-authors-a-cpu", row["key"])
        c = psnr_of(control, name_c, row["key"])
        rows.append((row["dataset"], row["label"], num(a, 3), num(c, 3), signed(a - c)))
    card_a = cards()["arasfsr-authors-a-cpu"]
    card_c = load(ROOT / "results" / "control" / "arasfsr-a-cpu-retrained.json")
    return table(["set", "row", "`arasfsr-authors-a-cpu`", "control (paper's formulation)", "difference"], rows,
                 "llrrr") + (
        f"\nPSNR(Y) on {ours['limit']} UTKFace / all FFHQ test faces, `results/eval/A` and `results/eval/A-control`; "
        f"validation PSNR {card_a['val_psnr_best']:.2f} against {card_c['val_psnr_best']:.2f} dB.\n")


# --- the rewriting -----------------------------------------------------------------------------


def render(text: str, where: str = "") -> str:
    def fill(m: re.Match) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"{where}: unknown generated block {name!r}; known: {', '.join(sorted(BLOCKS))}")
        return m.group(1) + BLOCKS[name]() + m.group(4)

    parts = re.split(r"(^```.*?^```)", text, flags=re.S | re.M)  # code blocks may show a marker as an example
    return "".join(part if part.startswith("```") else MARK.sub(fill, part) for part in parts)


def drift() -> dict[Path, str]:
    """Every doc file whose generated blocks differ from what the sources give, with its new text."""
    out = {}
    for path in doc_files():
        text = path.read_text()
        new = render(text, rel(path))
        if new != text:
            out[path] = new
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block would change")
    args = parser.parse_args(argv)
    changed = drift()
    for path, new in changed.items():
        if args.check:
            print(f"{rel(path)}: generated tables are out of date; run python -m tools.make_docs", file=sys.stderr)
        else:
            path.write_text(new)
            print(f"rewrote {rel(path)}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
