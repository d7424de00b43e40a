"""Results: min/median/max per series, ratios to the reference and the seed bot, targets."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, str, str, str]  # group, case, server, metric


REFERENCE = "reference"  # a target's ``against``: the group's reference server (nginx, bare)


@dataclass(frozen=True, slots=True)
class Target:
    """A goal: a ratio to another server of the same run, or a bound on the median itself."""

    label: str
    key: Key
    goal: float
    against: str | None = REFERENCE  # None: the median itself is compared with the goal
    kind: str = ">="  # ">=", "<=" or "<"


@dataclass
class Results:
    """Every measured value, by series, plus which server each group is compared with."""

    values: dict[Key, list[float]] = field(default_factory=lambda: defaultdict(list))
    references: dict[str, str] = field(default_factory=dict)
    peer: str = "seed"  # the second ratio column: the seed-style bot
    notes: list[str] = field(default_factory=list)

    def add(self, group: str, case: str, server: str, metric: str, value: float) -> None:
        self.values[(group, case, server, metric)].append(value)

    def median(self, key: Key) -> float:
        return statistics.median(self.values[key])

    def ratio(self, key: Key, against: str | None = None) -> float | None:
        """Median over the median of ``against`` (default: the group's reference), same cell."""
        group, case, server, metric = key
        reference = against or self.references.get(group)
        ref_key = (group, case, reference or "", metric)
        if not reference or server == reference or ref_key not in self.values:
            return None
        base = self.median(ref_key)
        return self.median(key) / base if base else None

    def check(self, target: Target) -> tuple[float | None, bool]:
        if target.key not in self.values:
            return None, False
        if target.against is None:
            value: float | None = self.median(target.key)
        else:
            against = None if target.against == REFERENCE else target.against
            value = self.ratio(target.key, against)
        if value is None:
            return None, False
        met = {">=": value >= target.goal, "<=": value <= target.goal, "<": value < target.goal}
        return value, met[target.kind]


def summarize(results: Results, targets: list[Target], machine: dict[str, Any]) -> dict[str, Any]:
    """The JSON document written to bench/results/latest.json."""
    series = []
    for key, values in results.values.items():
        group, case, server, metric = key
        ratio, vs_peer = results.ratio(key), results.ratio(key, results.peer)
        series.append(
            {
                "group": group,
                "case": case,
                "server": server,
                "metric": metric,
                "values": [round(v, 3) for v in values],
                "min": round(min(values), 3),
                "median": round(statistics.median(values), 3),
                "max": round(max(values), 3),
                "reference": results.references.get(group),
                "ratio": None if ratio is None else round(ratio, 3),
                "peer": results.peer,
                "ratio_peer": None if vs_peer is None else round(vs_peer, 3),
            }
        )
    checks = []
    for target in targets:
        value, met = results.check(target)
        checks.append(
            {
                "target": target.label,
                "measured": None if value is None else round(value, 3),
                "goal": f"{target.kind} {target.goal:g}",
                "kind": "absolute" if target.against is None else "ratio",
                "met": met,
            }
        )
    return {"machine": machine, "targets": checks, "series": series, "notes": results.notes}


def markdown(doc: dict[str, Any]) -> str:
    """The same document as Markdown tables."""
    machine = doc["machine"]
    workers = machine["workers"]
    each = ", ".join(map(str, workers)) if isinstance(workers, list) else workers
    lines = [
        f"# Benchmark {machine['date']}",
        "",
        f"{machine['cores']} cores ({machine['cpu']}), Linux {machine['kernel']}, "
        f"{machine['rounds']} rounds, every server with {each} worker(s) in turn. "
        "Ratios compare medians with the reference measured in the same run, with as many "
        "workers.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "",
        "## Targets (issues #5, #12 and #20)",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|:-:|",
    ]
    for check in doc["targets"]:
        suffix = "x" if check["kind"] == "ratio" else ""
        measured = "—" if check["measured"] is None else f"{check['measured']:g}{suffix}"
        lines.append(
            f"| {check['target']} | {measured} | {check['goal']}{suffix} | "
            f"{'yes' if check['met'] else '**no**'} |"
        )
    lines += ["", "## All series (min / median / max)", ""]
    lines += ["| group | case | server | metric | min | median | max | vs nginx / bare | vs seed |"]
    lines += ["|---|---|---|---|---:|---:|---:|---:|---:|"]
    for s in doc["series"]:
        ratio = "" if s["ratio"] is None else f"{s['ratio']:.2f}x {s['reference']}"
        vs_peer = "" if s.get("ratio_peer") is None else f"{s['ratio_peer']:.2f}x"
        lines.append(
            f"| {s['group']} | {s['case']} | {s['server']} | {s['metric']} | "
            f"{s['min']:g} | {s['median']:g} | {s['max']:g} | {ratio} | {vs_peer} |"
        )
    if doc["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def write(doc: dict[str, Any], folder: Path) -> str:
    """latest.json and latest.md in folder; returns the Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    text = markdown(doc)
    (folder / "latest.md").write_text(text, encoding="utf-8")
    return text
