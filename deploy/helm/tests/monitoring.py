"""What the alerts and the dashboard may use: the metric names the runtimes
export, read from the code that records them, and the metric names a PromQL
expression refers to. Also promtool, Prometheus's own checker (Debian's
`prometheus` package; deploy/helm/test.sh installs it when missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
METRICS_SOURCES = REPO_ROOT / "crates" / "server" / "src"

# Series of kube-state-metrics the migration job's alert reads: the job
# exits before any scrape, so its outcome is Kubernetes' to report.
KUBE_STATE_METRICS = {"kube_job_status_failed", "kube_job_status_succeeded"}

_RECORDED = re.compile(r'metrics::(counter|gauge|histogram)!\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')


def exported_metrics() -> dict[str, str]:
    """Every metric the runtimes record, by name, with its type."""
    found: dict[str, str] = {}
    for source in sorted(METRICS_SOURCES.rglob("*.rs")):
        for kind, name in _RECORDED.findall(source.read_text(encoding="utf-8")):
            assert found.setdefault(name, kind) == kind, f"{name} recorded as two types"
    assert len(found) > 20, f"found only {sorted(found)} in {METRICS_SOURCES}"
    return found


def exported_series_names() -> set[str]:
    """The names a query can select: a histogram is its _bucket, _sum and _count."""
    names: set[str] = set()
    for name, kind in exported_metrics().items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "atan2", "by", "without", "on", "ignoring",
             "group_left", "group_right", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, aggregations,
    keywords, label names and values left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _OFFSET.sub("", text)
    names = set()
    for name, call in _IDENT.findall(text):
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install prometheus); deploy/helm/test.sh does when it is missing"
        )
    return path


def run_promtool(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [promtool(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{output}"
    return output


def write_rule_file(path: Path, groups: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return path
