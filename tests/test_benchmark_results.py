"""Benchmark results say where they came from: every JSON under benchmarks/results/ starts
with its provenance (commit, machine, command, date) and is listed in the folder's index, and
the tools write that provenance themselves."""

import json
import re
from pathlib import Path

from tools import ROOT
from tools.provenance import write_result

RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("commit", "machine", "command", "date")


def test_every_result_has_its_provenance_and_a_line_in_the_index():
    files = sorted(RESULTS.rglob("*.json"))
    assert files
    listed = set(re.findall(r"\]\(([\w./-]+\.json)\)", (RESULTS / "README.md").read_text()))
    for path in files:
        record = json.loads(path.read_text())
        assert list(record)[0] == "provenance", path
        assert all(isinstance(record["provenance"].get(k), str) and record["provenance"][k] for k in KEYS), path
        assert path.relative_to(RESULTS).as_posix() in listed, f"{path} is not in benchmarks/results/README.md"
    assert listed == {p.relative_to(RESULTS).as_posix() for p in files}  # no line for a missing file


def test_a_tool_writes_the_provenance_of_its_result(tmp_path: Path):
    out = write_result(tmp_path / "kind" / "x.json", {"rows": [1, 2]}, "tools.bench.speed", ["--sizes", "64:512"])
    record = json.loads(out.read_text())
    assert record["rows"] == [1, 2]
    prov = record["provenance"]
    assert prov["command"] == "python -m tools.bench.speed --sizes 64:512"
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", prov["commit"])
    assert "cores" in prov["machine"] and re.match(r"\d{4}-\d\d-\d\dT", prov["date"])
