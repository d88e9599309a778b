"""Read stored metric samples back: the series the Monitoring page and alert rules chart."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from analytics import clickhouse


@dataclass
class Series:
    """One labelled series of a metric: its labels and (time, value) points, oldest first."""

    labels: dict[str, str]
    points: list[tuple[datetime.datetime, float]] = field(default_factory=list)


def series(
    name: str,
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    labels: dict[str, str] | None = None,
) -> list[Series]:
    """Return the stored series of metric `name` in [start, end), optionally only those whose
    labels include `labels`, one Series per label set, ordered by labels.

    Staff-only figures (every tenant's): call from staff pages and system jobs, never a
    tenant's page.
    """
    parameters: dict[str, object] = {"name": name, "start": start, "end": end}
    where = ["name = {name:String}", "timestamp >= {start:DateTime64(3)}"]
    where.append("timestamp < {end:DateTime64(3)}")
    for index, (key, value) in enumerate(sorted((labels or {}).items())):
        where.append(f"labels[{{k{index}:String}}] = {{v{index}:String}}")
        parameters[f"k{index}"], parameters[f"v{index}"] = key, value
    with clickhouse.session() as client:
        rows = client.query(
            f"SELECT labels, timestamp, value FROM metrics WHERE {' AND '.join(where)} "
            "ORDER BY timestamp",
            parameters=parameters,
        ).result_rows
    found: dict[tuple[tuple[str, str], ...], Series] = {}
    for row_labels, timestamp, value in rows:
        label_set = tuple(sorted(row_labels.items()))
        found.setdefault(label_set, Series(labels=dict(label_set))).points.append(
            (timestamp, value)
        )
    return [found[label_set] for label_set in sorted(found)]
