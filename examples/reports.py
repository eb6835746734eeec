"""Reports: a batch of reports with both naming mechanisms.

``{index}`` in the template names the per-report processing step; ``.named()``
names the conditional notification, which only some reports need.

    python examples/reports.py --id reports-1
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import date

import zart
from zart import durable, step


@dataclass
class Report:
    id: str
    owner: str
    period: date
    rows: int


@dataclass
class Summary:
    report_id: str
    flagged: bool


@dataclass
class ReportBatch:
    period: date


@step("list-reports")
async def list_reports(period: date) -> list[Report]:
    return [
        Report("r-1", "ana", period, 120),
        Report("r-2", "ben", period, 0),
        Report("r-3", "carla", period, 5_000),
    ]


@step("process-report-{index}")
async def process_report(index: int, report: Report) -> Summary:
    return Summary(report_id=report.id, flagged=report.rows == 0 or report.rows > 1_000)


@step("notify-owner")
async def notify_owner(owner: str, report_id: str) -> None:
    print(f"told {owner} about {report_id}", flush=True)


@durable("process-reports")
async def process_reports(batch: ReportBatch) -> list[Summary]:
    reports = await list_reports(batch.period)
    summaries = []
    for i, report in enumerate(reports):
        summary = await process_report(i, report)
        summaries.append(summary)
        if summary.flagged:
            await notify_owner(report.owner, report.id).named(f"notify-owner-{report.id}")
    return summaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", default="reports-demo")
    args = parser.parse_args(argv)
    app = zart.Zart(os.environ.get("ZART_DATABASE_URL", "sqlite:///examples.db"))
    summaries = app.run(
        process_reports, ReportBatch(period=date(2026, 11, 1)), execution_id=args.id
    )
    print(f"result: {summaries}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
