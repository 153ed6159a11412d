"""results.json and results.md (tables laid out as the protocol's record says, like the paper's)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import InputError
from ..protocols import TableLayout, get_protocol

METRIC_TITLES = {"psnr": "PSNR (dB)", "ssim": "SSIM (scikit-image defaults)",
                 "ssim_matlab": "SSIM (MATLAB-style: Gaussian sigma 1.5, population covariance)"}
METRIC_SHORT = {"psnr": "PSNR", "ssim": "SSIM", "ssim_matlab": "SSIM (MATLAB)"}


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _json_safe(value):
    # A face reproduced exactly has infinite PSNR; JSON has no infinity, so say it as a string.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_results(results: dict, out: Path) -> tuple[Path, Path]:
    js = write_text_atomic(out / "results.json", json.dumps(_json_safe(results), indent=1) + "\n")
    md = write_text_atomic(out / "results.md", render_markdown(results))
    return js, md


def _cells(results: dict) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["row"]): r for r in results["results"]}


def _header(row: dict, with_dataset: bool = False) -> str:
    text = row["label"] + (f" ({row['note']})" if row["note"] else "")
    return f"{row['dataset']} {text}" if with_dataset else text


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else "inf"


def _table(models: list[str], rows: list[dict], cells: dict, columns: list[tuple[dict, str]],
           headers: list[str]) -> list[str]:
    """Markdown table: one line per model, best value per column in bold."""
    best = {}
    for i, (row, metric) in enumerate(columns):
        vals = [cells[m, row["key"]][metric] for m in models if (m, row["key"]) in cells]
        best[i] = max(vals) if vals else None
    lines = ["| Method | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
    for m in models:
        out = []
        for i, (row, metric) in enumerate(columns):
            cell = cells.get((m, row["key"]))
            text = _fmt(cell[metric] if cell else None)
            out.append(f"**{text}**" if cell and len(models) > 1 and cell[metric] == best[i] else text)
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    return lines


def render_markdown(results: dict) -> str:
    models = [m["name"] for m in results["models"]]
    rows = results["rows"]
    cells = _cells(results)
    counts = ", ".join(f"{ds}: {n} faces" for ds, n in results["face_counts"].items())
    lines = [f"# {results['title']}", "",
             f"Protocol {results['protocol']}, tier `{results['tier']}`, {counts}"
             + (f" (--limit {results['limit']})" if results["limit"] else "")
             + f"; device {results['device']} ({results.get('precision', 'fp32')}), {results['world_size']} process(es), "
             f"{results['elapsed_s']} s.", "",
             "Metrics on the Y channel (BT.601, truncated to uint8) of the whole image; "
             "each value is the mean over faces. Best per column in bold.", ""]
    lines += _layout_tables(get_protocol(results["protocol"]).layout, models, rows, cells)
    lines += _group_tables(results, models, rows, cells)
    return "\n".join(lines).rstrip() + "\n"


def _layout_tables(layout: TableLayout, models: list[str], rows: list[dict], cells: dict) -> list[str]:
    """The result tables: per block of rows, one table per entry of ``layout.tables``."""
    if layout.by_set:  # Tables 1 and 3: a block per set, columns named by the row
        blocks: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            blocks.setdefault((r["dataset"], r["degradation"]), []).append(r)
        named = [([f"## {dataset}, {degradation} LR", ""], block, {r["key"]: _header(r) for r in block})
                 for (dataset, degradation), block in blocks.items()]
    else:  # Table 2: one block, columns naming the set too
        named = [([], rows, {r["key"]: f"{r['dataset'].split('/')[0]} {r['label']} {r['note']}".strip()
                             for r in rows})]
    lines: list[str] = []
    for heading, block, header in named:
        lines += heading
        for metrics in layout.tables:
            columns = [(r, m) for r in block for m in metrics]
            if len(metrics) == 1:
                lines += [f"{METRIC_TITLES[metrics[0]]}:", ""]
                headers = [header[r["key"]] for r, _ in columns]
            else:
                headers = [f"{header[r['key']]} {METRIC_SHORT[m]}" for r, m in columns]
            lines += _table(models, block, cells, columns, headers) + [""]
    return lines


def _group_tables(results: dict, models: list[str], rows: list[dict], cells: dict) -> list[str]:
    utk = [r for r in rows if r["dataset"].startswith("utkface")]
    if not utk:
        return []
    lines = [f"## Per group on {', '.join(dict.fromkeys(r['dataset'] for r in utk))}: PSNR (dB) / SSIM", "",
             "Groups from the file names (AGE_GENDER_RACE_DATETIME.jpg); n = faces in the group.", ""]
    for m in models:
        present = [r for r in utk if (m, r["key"]) in cells]
        if not present:
            continue
        lines += [f"### {m}", "", "| Group | n | " + " | ".join(_header(r) + ("" if r["degradation"] == "bicubic" else f" {r['degradation']}")
                                              for r in present)
                  + " |", "|---|---|" + "---|" * len(present)]
        first = cells[m, present[0]["key"]]["groups"]
        for kind, values in first.items():
            for value, stats in values.items():
                texts = []
                for r in present:
                    g = cells[m, r["key"]]["groups"][kind][value]
                    texts.append(f"{_fmt(g['psnr'])} / {_fmt(g['ssim'])}")
                lines.append(f"| {kind} {value} | {stats['count']} | " + " | ".join(texts) + " |")
        lines.append("")
    return lines
