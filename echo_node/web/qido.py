"""QIDO-RS (PS3.18 §10.6): search studies, series and instances in the index.

Matching runs in SQL on the indexed attributes; ModalitiesInStudy and the Number Of Related
counts derive from rows. Attributes the index does not hold (PatientSex, InstanceNumber, any
includefield) come from the header of one stored file per result, read without pixel data,
only for the results returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from echo_node.node import Node
from echo_node.web.dicomjson import DICOM_JSON, attribute_tag, keyword, to_json, without_bulk_data
from echo_node.web.lookup import newest_versions
from storage.models import Instance, Series, Study

# Returned when the client gives no limit: bounds the work of one request.
DEFAULT_LIMIT = 1000
_RESERVED = frozenset({"limit", "offset", "includefield", "fuzzymatching"})

# Default return attributes read from file headers (PS3.18 Tables 10.6.3-3 to -5).
_STUDY_HEADER = ("ReferringPhysicianName", "PatientBirthDate", "PatientSex", "StudyID")
_SERIES_HEADER = ("PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime")
_INSTANCE_HEADER = ("InstanceNumber", "Rows", "Columns", "BitsAllocated")

_Column = InstrumentedAttribute[Any]


@dataclass(frozen=True)
class Level:
    name: str
    columns: dict[str, _Column]  # DICOM keyword -> indexed column
    header: tuple[str, ...]


STUDY = Level(
    "study",
    {
        "StudyInstanceUID": Study.study_instance_uid,
        "PatientName": Study.patient_name,
        "PatientID": Study.patient_id,
        "StudyDate": Study.study_date,
        "StudyTime": Study.study_time,
        "AccessionNumber": Study.accession_number,
        "StudyDescription": Study.study_description,
    },
    _STUDY_HEADER,
)
SERIES = Level(
    "series",
    {
        "SeriesInstanceUID": Series.series_instance_uid,
        "Modality": Series.modality,
        "SeriesNumber": Series.series_number,
        "SeriesDescription": Series.series_description,
    },
    _SERIES_HEADER,
)
INSTANCE = Level(
    "instance",
    {"SOPInstanceUID": Instance.sop_instance_uid, "SOPClassUID": Instance.sop_class_uid},
    _INSTANCE_HEADER,
)
_UID_KEYS = frozenset({"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"})
_RANGE_KEYS = frozenset({"StudyDate", "StudyTime"})


@dataclass(frozen=True)
class Search:
    filters: dict[str, str]
    include: frozenset[str]
    include_all: bool
    limit: int
    offset: int
    ignored: tuple[str, ...]
    capped: bool  # the node's limit applies, not the client's


def make_router(node: Node, read: Any) -> APIRouter:
    router = APIRouter(tags=["QIDO-RS"], dependencies=[Depends(read)])
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "matches (possibly none)", "content": {DICOM_JSON: {}}}
    }

    def route(path: str, levels: tuple[Level, ...], fixed: Callable[..., dict[str, str]]) -> None:
        async def search(
            request: Request,
            limit: int | None = Query(None, ge=0, le=1_000_000),
            offset: int = Query(0, ge=0, le=1_000_000_000),
            includefield: list[str] = Query([]),  # noqa: B008 - FastAPI's declaration style
            fuzzymatching: bool = False,
            # A dependency, so that the path's UIDs are declared in the OpenAPI schema.
            in_path: dict[str, str] = Depends(fixed),  # noqa: B008
        ) -> JSONResponse:
            search = _parse(request, levels, limit, offset, includefield)
            search.filters.update(in_path)
            results, more = await anyio.to_thread.run_sync(_run, node, levels, search)
            absolute_urls(results, f"{str(request.base_url).rstrip('/')}/dicom-web")
            warnings = []
            if search.ignored:
                ignored = ", ".join(search.ignored)
                warnings.append(f'299 echo-node "not supported for matching, ignored: {ignored}"')
            if more:
                # PS3.18 §8.3.4.4: say that more results exist; the client pages with offset.
                warnings.append(
                    f'299 echo-node "there are additional results that can be requested '
                    f'(at most {DEFAULT_LIMIT} per request)"'
                )
            headers = {"Warning": ", ".join(warnings)} if warnings else {}
            return JSONResponse(results, 200, headers=headers, media_type=DICOM_JSON)

        router.add_api_route(
            path, search, methods=["GET"], responses=responses, name=f"search {path}"
        )

    def no_fixed() -> dict[str, str]:
        return {}

    def in_study(study: str) -> dict[str, str]:
        return {"StudyInstanceUID": study}

    def in_series(study: str, series: str) -> dict[str, str]:
        return {"StudyInstanceUID": study, "SeriesInstanceUID": series}

    route("/studies", (STUDY,), no_fixed)
    route("/series", (SERIES, STUDY), no_fixed)
    route("/instances", (INSTANCE, SERIES, STUDY), no_fixed)
    route("/studies/{study}/series", (SERIES, STUDY), in_study)
    route("/studies/{study}/instances", (INSTANCE, SERIES, STUDY), in_study)
    route("/studies/{study}/series/{series}/instances", (INSTANCE, SERIES, STUDY), in_series)
    return router


def _parse(
    request: Request,
    levels: tuple[Level, ...],
    limit: int | None,
    offset: int,
    includefield: list[str],
) -> Search:
    known = {key for level in levels for key in level.columns}
    if STUDY in levels:
        known.add("ModalitiesInStudy")
    filters: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in request.query_params.multi_items():
        if key in _RESERVED:
            continue
        name = keyword(attribute_tag(key)) if "." not in key else key
        if name in known:
            filters[name] = value
        else:
            ignored.append(name)
    include: set[str] = set()
    include_all = False
    for field in includefield:
        for item in field.split(","):
            item = item.strip()
            if item == "all":
                include_all = True
            elif item:
                include.add(keyword(attribute_tag(item)))
    return Search(
        filters,
        frozenset(include),
        include_all,
        DEFAULT_LIMIT if limit is None else min(limit, DEFAULT_LIMIT),
        offset,
        tuple(ignored),
        capped=limit is None or limit > DEFAULT_LIMIT,
    )


def _run(
    node: Node, levels: tuple[Level, ...], search: Search
) -> tuple[list[dict[str, Any]], bool]:
    """The results, and whether more matched than the node's own limit let through."""
    level = levels[0]
    with node.sessions() as session:
        query = _query(level, search.filters)
        rows = session.execute(query.limit(search.limit + 1).offset(search.offset)).all()
        more = len(rows) > search.limit
        results = [_result(node, session, level, row, search) for row in rows[: search.limit]]
        return results, more and search.capped


def _query(level: Level, filters: dict[str, str]) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [
        _match(key, column, filters[key])
        for lvl in (STUDY, SERIES, INSTANCE)
        for key, column in lvl.columns.items()
        if key in filters and filters[key] != ""
    ]
    if filters.get("ModalitiesInStudy"):
        other = select(Series.id).where(
            Series.study_id == Study.id,
            Series.modality.in_(_split_list(filters["ModalitiesInStudy"])),
        )
        conditions.append(exists(other))
    if level is STUDY:
        query: Select[Any] = select(Study).order_by(Study.id)
    elif level is SERIES:
        query = select(Series).join(Study, Study.id == Series.study_id).order_by(Series.id)
    else:
        query = (
            select(Instance)
            .join(Series, Series.id == Instance.series_id)
            .join(Study, Study.id == Series.study_id)
            .where(Instance.id.in_(newest_versions()))
            .order_by(Instance.id)
        )
    return query.where(and_(*conditions)) if conditions else query


def _split_list(value: str) -> list[str]:
    return [item for item in value.replace("\\", ",").split(",") if item]


def _match(key: str, column: _Column, value: str) -> ColumnElement[bool]:
    if key in _UID_KEYS:
        return column.in_(_split_list(value))
    if key in _RANGE_KEYS and "-" in value:
        low, _, high = value.partition("-")
        bounds: list[ColumnElement[bool]] = []
        if low:
            bounds.append(column >= low)
        if high:
            # A time range's end includes everything within its last unit ("1030" = 10:30:xx).
            bounds.append(column <= high + ("\uffff" if key == "StudyTime" else ""))
        return and_(*bounds) if bounds else column.is_not(None)
    if "*" in value or "?" in value:
        pattern = (
            value.replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
            .replace("*", "%")
            .replace("?", "_")
        )
        if key == "PatientName":
            return func.lower(column).like(pattern.lower(), escape="\\")
        return column.like(pattern, escape="\\")
    if key == "PatientName":
        return func.lower(column) == value.lower()
    return column == value


def _result(node: Node, session: Session, level: Level, row: Any, search: Search) -> dict[str, Any]:
    entity = row[0]
    out = Dataset()
    header_keys: Iterable[str]
    if level is STUDY:
        _study_attributes(out, session, entity)
        header_keys = STUDY.header
        path = _first_path(session, Series.study_id == entity.id)
        base_url = f"studies/{entity.study_instance_uid}"
    elif level is SERIES:
        _study_attributes(out, session, entity.study)
        _series_attributes(out, session, entity)
        header_keys = (*SERIES.header, *STUDY.header)
        path = _first_path(session, Instance.series_id == entity.id)
        base_url = f"studies/{entity.study.study_instance_uid}/series/{entity.series_instance_uid}"
    else:
        series = entity.series
        _study_attributes(out, session, series.study)
        _series_attributes(out, session, series)
        out.SOPClassUID = entity.sop_class_uid
        out.SOPInstanceUID = entity.sop_instance_uid
        out.InstanceAvailability = "ONLINE"
        if entity.number_of_frames is not None:
            out.NumberOfFrames = entity.number_of_frames
        header_keys = INSTANCE.header
        path = entity.path
        base_url = (
            f"studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
            f"/instances/{entity.sop_instance_uid}"
        )
    out.RetrieveURL = base_url  # relative here; absolute_urls prefixes the request's base
    wanted = set(header_keys) | set(search.include)
    if path is not None:
        _copy_from_header(out, node.store.root / path, wanted, search.include_all)
    for key in search.include:
        if key not in out:
            setattr(out, key, None)
    return to_json(out)


def _first_path(session: Session, where: ColumnElement[bool]) -> str | None:
    return session.scalar(
        select(Instance.path)
        .join(Series, Series.id == Instance.series_id)
        .where(where)
        .order_by(Instance.id)
        .limit(1)
    )


def _study_attributes(out: Dataset, session: Session, study: Study) -> None:
    out.StudyInstanceUID = study.study_instance_uid
    out.StudyDate = study.study_date or ""
    out.StudyTime = study.study_time or ""
    out.AccessionNumber = study.accession_number or ""
    out.PatientName = study.patient_name or ""
    out.PatientID = study.patient_id or ""
    out.StudyDescription = study.study_description or ""
    modalities = session.scalars(
        select(Series.modality).where(Series.study_id == study.id).distinct()
    )
    out.ModalitiesInStudy = sorted(m for m in modalities if m)
    out.NumberOfStudyRelatedSeries = session.scalar(
        select(func.count(Series.id)).where(Series.study_id == study.id)
    )
    out.NumberOfStudyRelatedInstances = session.scalar(
        select(func.count(Instance.id))
        .join(Series, Series.id == Instance.series_id)
        .where(Series.study_id == study.id, Instance.id.in_(newest_versions()))
    )


def _series_attributes(out: Dataset, session: Session, series: Series) -> None:
    out.SeriesInstanceUID = series.series_instance_uid
    out.Modality = series.modality or ""
    out.SeriesNumber = series.series_number or None
    out.SeriesDescription = series.series_description or ""
    out.NumberOfSeriesRelatedInstances = session.scalar(
        select(func.count(Instance.id)).where(
            Instance.series_id == series.id, Instance.id.in_(newest_versions())
        )
    )


def _copy_from_header(out: Dataset, path: Path, wanted: set[str], everything: bool) -> None:
    try:
        header = dcmread(path, stop_before_pixels=True, defer_size=4096)
    except (OSError, ValueError):
        return  # the file is the index's problem; the indexed attributes are still right
    for element in without_bulk_data(header):
        if element.tag in out or element.tag.group == 0x0002:
            continue
        if everything or element.keyword in wanted:
            out[element.tag] = element


def absolute_urls(results: list[dict[str, Any]], base: str) -> None:
    for result in results:
        url = result.get("00081190")
        if url and url.get("Value"):
            url["Value"] = [f"{base}/{url['Value'][0]}"]
