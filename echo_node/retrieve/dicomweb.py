"""Retrieval from a DICOMweb source (PS3.18): QIDO-RS lists the study's instances, WADO-RS
brings them as multipart/related application/dicom, asked for in the syntax the source
stores them in (``transfer-syntax=*``, so nothing is transcoded on the way).

The body is parsed as it arrives (echo_node.web.multipart): each part goes to its own file in
the store's tmp/, is put in the node's Part 10 envelope (the same file a C-STORE of that
dataset would make) and handed to the Ingestor, so a study is never held in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from echo_node.envelope import rewrap
from echo_node.ingest import Ingestor, IngestResult, Peer
from echo_node.retrieve.outcome import RetrieveError, Tally
from echo_node.settings import Settings, Source
from echo_node.web.mediatypes import content_type_parameters
from echo_node.web.multipart import MultipartError, MultipartParser, TempFileSink, TruncatedPart

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_ANY_SYNTAX = 'multipart/related; type="application/dicom"'
_EXCERPT = 200


def study_at_source(source: Source, settings: Settings, study_uid: str) -> int:
    """How many instances of the study the source lists (QIDO-RS); 0 when it has none."""
    with _client(source, settings) as client:
        try:
            response = client.get(
                f"{_root(source)}/studies/{study_uid}/instances",
                headers={"Accept": DICOM_JSON},
            )
        except httpx.HTTPError as exc:
            raise RetrieveError(f"source {source.name} could not be reached: {exc}") from None
    if response.status_code in (204, 404):
        return 0
    _check(source, response, "QIDO-RS")
    try:
        found = response.json()
    except ValueError:
        raise RetrieveError(f"source {source.name}: QIDO-RS answered no JSON") from None
    return len(found) if isinstance(found, list) else 0


def wado_rs(
    source: Source, settings: Settings, ingestor: Ingestor, study_uid: str, tally: Tally
) -> str:
    """Retrieve the study; each part is ingested and counted in ``tally``. Returns what went
    wrong with the body, if anything (the parts before it are kept)."""
    peer = Peer(ae_title=None, address=httpx.URL(_root(source)).host, transport="retrieve")
    url = f"{_root(source)}/studies/{study_uid}"
    with _client(source, settings) as client:
        for accept in (_AS_STORED, _ANY_SYNTAX):
            try:
                with client.stream("GET", url, headers={"Accept": accept}) as response:
                    if response.status_code == 406 and accept == _AS_STORED:
                        continue  # a source that only sends one syntax: take it as it comes
                    if response.status_code in (204, 404):
                        return "the source answered the retrieval with no instance"
                    if response.status_code >= 400:
                        response.read()
                    _check(source, response, "WADO-RS")
                    return _receive(response, ingestor, peer, tally)
            except httpx.HTTPError as exc:
                return f"WADO-RS ended early: {type(exc).__name__}"
    return "WADO-RS: the source refused every media type asked for"


def _receive(response: httpx.Response, ingestor: Ingestor, peer: Peer, tally: Tally) -> str:
    media_type, parameters = content_type_parameters(response.headers.get("content-type", ""))
    if media_type != "multipart/related" or not parameters.get("boundary"):
        return f"WADO-RS answered {media_type or 'no media type'}, not multipart/related"
    sink = TempFileSink(ingestor.store, ".wado")
    parser = MultipartParser(parameters["boundary"], sink)
    problem = ""
    try:
        for chunk in response.iter_bytes():
            parser.feed(chunk)
            _ingest_done(sink, ingestor, peer, tally)
        parser.close()
    except TruncatedPart:
        problem = "the WADO-RS body ended inside an instance"
    except MultipartError as exc:
        problem = f"malformed WADO-RS body: {exc}"
    except httpx.HTTPError as exc:
        problem = f"WADO-RS ended early: {type(exc).__name__}"
    finally:
        _ingest_done(sink, ingestor, peer, tally)
        sink.discard()
    return problem


def _ingest_done(sink: TempFileSink, ingestor: Ingestor, peer: Peer, tally: Tally) -> None:
    while sink.done:
        part = sink.done.pop(0)
        tally.add(_ingest_part(ingestor, part.path, part.complete, peer))


def _ingest_part(ingestor: Ingestor, path: Path, complete: bool, peer: Peer) -> IngestResult:
    if not complete:
        # Cut off: the Ingestor finds it damaged and quarantines it with the reason.
        return ingestor.ingest(path, peer)
    wrapped = ingestor.store.new_temp_path(".dcm")
    try:
        rewrap(path, wrapped)
    except OSError:  # the copy could not be written (disk full): nothing kept
        wrapped.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return ingestor.not_received(peer, None)
    except Exception:  # not readable DICOM: ingest quarantines the original bytes with why
        wrapped.unlink(missing_ok=True)
        return ingestor.ingest(path, peer)
    path.unlink(missing_ok=True)
    return ingestor.ingest(wrapped, peer)


def _client(source: Source, settings: Settings) -> httpx.Client:
    headers = {"Authorization": f"Bearer {source.token}"} if source.token else {}
    return httpx.Client(headers=headers, timeout=settings.network_timeout_s)


def _root(source: Source) -> str:
    assert source.url  # by Source
    return source.url.rstrip("/")


def _check(source: Source, response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.text[:_EXCERPT].strip()
    except httpx.ResponseNotRead:
        body = ""
    if response.status_code in (401, 403):
        raise RetrieveError(
            f"source {source.name} refused {what} ({response.status_code}): check its token"
        )
    raise RetrieveError(
        f"source {source.name}: {what} answered {response.status_code}"
        + (f" ({body})" if body else "")
    )
