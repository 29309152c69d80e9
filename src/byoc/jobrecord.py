"""A local job's ``job.json``: keys shaped like DescribeTrainingJob, merged by each writer."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORD_FILE = "job.json"
_LOCK = threading.Lock()


def read(job_dir: Path) -> dict[str, Any]:
    """The record of the job in *job_dir* ({} when it has none)."""
    path = job_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def merge(job_dir: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Merge *fields* into ``job.json`` (objects key by key, anything else replaced); atomic."""
    with _LOCK:
        record = _merged(read(job_dir), fields)
        handle, name = tempfile.mkstemp(prefix=".job-", suffix=".json", dir=job_dir)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        os.replace(name, job_dir / RECORD_FILE)
        return record


def _merged(base: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in fields.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result
