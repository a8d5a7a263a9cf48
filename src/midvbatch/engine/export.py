"""Export a run's results: one record per frame (frame processors) or per clip (clip processors)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from midvbatch.engine.ledger import Ledger
from midvbatch.errors import LedgerError

FORMATS = ("jsonl", "csv")


def result_records(run_dir: str | Path) -> Iterator[dict]:
    """Yield the records of every done clip, in queue order; frames first, then clip results."""
    ledger = Ledger(run_dir, readonly=True)
    try:
        for row in ledger.frame_results():
            yield {
                "clip": row["clip"], "document": row["document"], "frame": row["frame"],
                "time": row["time"], "seconds": row["seconds"], "result": json.loads(row["result"]),
            }
        for row in ledger.clip_results():
            yield {
                "clip": row["clip"], "document": row["document"], "frame": None,
                "time": None, "seconds": row["wall_seconds"], "result": json.loads(row["result"]),
            }
    finally:
        ledger.close()


def _flatten(record: dict) -> dict:
    flat = {k: v for k, v in record.items() if k != "result"}
    result = record["result"]
    if isinstance(result, dict):
        for key, value in result.items():
            flat[f"result.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    elif result is not None:
        flat["result"] = json.dumps(result)
    return flat


def export_results(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> int:
    """Write the run's results as JSON lines or CSV to `out` (default stdout); return the record count."""
    if fmt not in FORMATS:
        raise LedgerError(f"unknown export format {fmt!r} (use {' or '.join(FORMATS)})")
    if not Path(run_dir).is_dir():
        raise LedgerError("no such run folder", path=run_dir)
    stream: IO[str] = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        if fmt == "jsonl":
            for record in result_records(run_dir):
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        else:
            rows = [_flatten(r) for r in result_records(run_dir)]  # columns come from every result
            columns: dict[str, None] = dict.fromkeys(["clip", "document", "frame", "time", "seconds"])
            for row in rows:
                columns.update(dict.fromkeys(row))
            writer = csv.DictWriter(stream, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
            count = len(rows)
    finally:
        if out:
            stream.close()
    return count
