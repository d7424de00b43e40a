"""Stand-ins for parsed messages and metrics text."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass
class Msg:
    type: str
    content: str = ""
    event: str = ""
    event_key: str = ""
    recognition: str = ""
    scan_result: str = ""
    source: str = "o_follower"
    nested: dict[str, str] = field(default_factory=dict)

    def at(self, path: str) -> str:
        return self.nested.get(path, "")
