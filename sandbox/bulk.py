"""Salesforce Bulk API 2.0 ingest jobs: create, upload CSV, close (the job is then processed
record by record with the same checks as the REST API), poll, and the per-record result CSVs."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, request

from sandbox.api import instrument
from sandbox.context import Context, ctx
from sandbox.responses import json_response, sf_error
from sandbox.salesforce_records import Planned, commit, plan, sf_datetime
from sandbox.store import utcnow

bp = Blueprint("salesforce_bulk", __name__)
instrument(bp, "salesforce", exempt=set())
JOBS = "/services/data/v<version>/jobs/ingest"
OPERATIONS = ("insert", "update", "upsert", "delete")
DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}


@dataclass
class Job:
    info: dict[str, Any]
    data: list[str] = field(default_factory=list)
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


def _jobs(context: Context) -> dict[str, Job]:
    return context.store.bulk_jobs


def _job(job_id: str) -> Job:
    job = _jobs(ctx()).get(job_id)
    if job is None:
        raise sf_error(404, "NOT_FOUND", f"Job {job_id} does not exist")
    return job


@bp.post(f"{JOBS}/")
def create_job(version: str) -> Response:
    context = ctx()
    body = request.get_json(silent=True) or {}
    obj = context.sf_objects.get(body.get("object", ""))
    operation = body.get("operation")
    if obj is None:
        raise sf_error(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
    if operation not in OPERATIONS:
        raise sf_error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
    external = body.get("externalIdFieldName")
    if operation == "upsert" and not (
        external and obj.fields.get(external) and obj.fields[external].external_id
    ):
        raise sf_error(
            400,
            "INVALIDJOB",
            f"InvalidJob : External ID field {external} is not valid for {obj.name}",
        )
    now = sf_datetime(utcnow())
    with context.store.lock:
        job_id = context.store.ids.salesforce("750")
        info = {
            "id": job_id,
            "operation": operation,
            "object": obj.name,
            "createdById": context.config.salesforce_integration_user_id,
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "externalIdFieldName": external,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "contentUrl": f"services/data/v{version}/jobs/ingest/{job_id}/batches",
            "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": body.get("columnDelimiter", "COMMA"),
        }
        _jobs(context)[job_id] = Job(info)
    return json_response(info)


@bp.put(f"{JOBS}/<job_id>/batches")
def upload(version: str, job_id: str) -> Response:
    with ctx().store.lock:
        job = _job(job_id)
        if job.info["state"] != "Open":
            raise sf_error(409, "INVALIDJOBSTATE", f"Job {job_id} is not Open")
        job.data.append(request.get_data(as_text=True))
    return Response(status=201)


@bp.patch(f"{JOBS}/<job_id>")
def set_state(version: str, job_id: str) -> Response:
    context = ctx()
    state = (request.get_json(silent=True) or {}).get("state")
    with context.store.lock:
        job = _job(job_id)
        if state == "Aborted":
            job.info["state"] = "Aborted"
        elif state == "UploadComplete" and job.info["state"] == "Open":
            job.info["state"] = "UploadComplete"
            reply = dict(job.info)
            _process(context, job)
            return json_response(reply)
        else:
            raise sf_error(400, "INVALIDJOBSTATE", f"Cannot change the job state to {state}")
        return json_response(job.info)


@bp.get(f"{JOBS}/<job_id>")
def job_info(version: str, job_id: str) -> Response:
    with ctx().store.lock:
        return json_response(_job(job_id).info)


@bp.delete(f"{JOBS}/<job_id>")
def delete_job(version: str, job_id: str) -> Response:
    with ctx().store.lock:
        _jobs(ctx()).pop(job_id, None)
    return Response(status=204)


@bp.get(f"{JOBS}/<job_id>/<kind>")
def results(version: str, job_id: str, kind: str) -> Response:
    with ctx().store.lock:
        job = _job(job_id)
        if kind == "successfulResults":
            rows, extra = job.successful, ["sf__Id", "sf__Created"]
        elif kind == "failedResults":
            rows, extra = job.failed, ["sf__Id", "sf__Error"]
        elif kind.lower() == "unprocessedrecords":
            rows, extra = [], []
        else:
            raise sf_error(404, "NOT_FOUND", f"Unknown result set {kind}")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=extra + job.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return Response(out.getvalue(), content_type="text/csv")


def _process(context: Context, job: Job) -> None:
    """Run every uploaded row as the REST API would, recording its result."""
    info = job.info
    obj = context.sf_objects[info["object"]]
    delimiter = DELIMITERS.get(info["columnDelimiter"], ",")
    table = context.store.table("salesforce", obj.name)
    actor = context.config.salesforce_integration_user_id
    for chunk in job.data:
        reader = csv.DictReader(io.StringIO(chunk), delimiter=delimiter)
        job.columns = list(reader.fieldnames or [])
        for raw in reader:
            record = {k: _csv_value(obj, k, v) for k, v in raw.items() if v != ""}
            row = None
            if info["operation"] == "upsert":
                row = table.find(info["externalIdFieldName"], raw[info["externalIdFieldName"]])
            elif info["operation"] in ("update", "delete"):
                row = table.rows.get(raw.get("Id", ""))
                if row is None:
                    job.failed.append(
                        {
                            "sf__Id": "",
                            "sf__Error": "INVALID_CROSS_REFERENCE_KEY:"
                            "invalid cross reference id:Id --",
                            **raw,
                        }
                    )
                    continue
            if info["operation"] == "delete":
                table.delete(row.id)  # type: ignore[union-attr]
                job.successful.append({"sf__Id": row.id, "sf__Created": "false", **raw})  # type: ignore[union-attr]
                continue
            planned = plan(context, obj, record, row)
            if not isinstance(planned, Planned):
                error = planned[0]
                job.failed.append(
                    {
                        "sf__Id": row.id if row else "",
                        "sf__Error": f"{error['statusCode']}:{error['message']}:"
                        f"{','.join(error['fields'])} --",
                        **raw,
                    }
                )
                continue
            saved, created = commit(context, planned, actor)
            job.successful.append({"sf__Id": saved.id, "sf__Created": str(created).lower(), **raw})
    g.records = len(job.successful) + len(job.failed)
    info.update(
        state="JobComplete",
        numberRecordsProcessed=len(job.successful) + len(job.failed),
        numberRecordsFailed=len(job.failed),
        retries=0,
        totalProcessingTime=1,
        apiActiveProcessingTime=1,
        apexProcessingTime=0,
        systemModstamp=sf_datetime(utcnow()),
    )


def _csv_value(obj: Any, name: str, value: str) -> Any:
    """CSV cells are text: convert to the field's JSON type; `#N/A` clears the field (an empty
    cell, left out by the caller, leaves it as it is), as in Bulk API 2.0."""
    spec = obj.fields.get(name)
    if value == "#N/A":
        return None
    if spec is None:
        return value
    if spec.type == "boolean":
        return value.lower() in ("true", "1")
    if spec.type in ("double", "currency", "percent", "int"):
        try:
            return float(value)
        except ValueError:
            return value
    return value
