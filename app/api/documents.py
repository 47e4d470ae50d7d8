"""Documents and retrieval: upload (`POST /upload`, the seed's, and `POST /v1/documents`, a
multipart `file`), list, read, delete; index a directory as a background job; search; stats.

A request acts for the user of the identity rules (`api/deps.Actor`); with no user named, for its
key (or, on a gateway without keys, for the anonymous user). One user never sees another's
documents; the shared library (`python -m app ingest`) is read by all when RAG_SHARED is on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.responses import Response

from app.api.deps import Actor, KnowledgeDep, ServicesDep
from app.api.openapi import errors, request_body
from app.api.responses import JSON
from app.api.schemas import parse_json, validate
from app.errors import InvalidRequest, NotFound
from app.knowledge.directory import allowed
from app.knowledge.documents import Ingested, document_view

router = APIRouter()

# Any other id is simply not found (a 404), as OpenAI answers for a file id it never issued.
DocumentId = Annotated[str, Path(max_length=64)]
JobId = Annotated[str, Path(max_length=64)]

_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "user_id": {"type": "string"},
                    },
                }
            }
        },
    }
}


class IndexBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory_path: str = Field(min_length=1)
    user_id: str | None = Field(None, min_length=1, max_length=256)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    threshold: bool = True
    """Only passages above RAG_THRESHOLD (false: the best k whatever their relevance)."""
    user_id: str | None = Field(None, min_length=1, max_length=256)


async def _upload(request: Request, knowledge: KnowledgeDep, actor: Actor) -> Ingested:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "send the document as multipart/form-data with a 'file' field", param="file"
        )
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("the form has no 'file' field with a file", param="file")
        named = form.get("user_id")
        owner = actor.owner(named if isinstance(named, str) and named else None)
        name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not name:
            raise InvalidRequest("the file has no name", param="file")
        data = await upload.read()
    return await knowledge.documents.ingest(owner, name, data)


def _ingested(result: Ingested) -> JSON:
    body = {**document_view(result.document), "status": result.status}
    return JSON(body, status_code=201 if result.status == "created" else 200)


@router.post(
    "/v1/documents",
    status_code=201,
    responses=errors(400, 413, 503),
    openapi_extra=_UPLOAD,
)
async def create_document(request: Request, knowledge: KnowledgeDep, actor: Actor) -> Response:
    """Add a document (PDF, TXT, Markdown, HTML, DOCX, JSON, CSV or source code) to the user's
    knowledge: 201 when new, 200 with `status` `unchanged` (same content already stored) or
    `replaced` (a changed file of the same name)."""
    return _ingested(await _upload(request, knowledge, actor))


@router.post("/upload", status_code=201, responses=errors(400, 413, 503), openapi_extra=_UPLOAD)
async def upload(request: Request, knowledge: KnowledgeDep, actor: Actor) -> Response:
    """The seed's upload: the same as `POST /v1/documents`."""
    return _ingested(await _upload(request, knowledge, actor))


@router.get("/v1/documents", responses=errors(503))
async def list_documents(knowledge: KnowledgeDep, actor: Actor) -> Response:
    """The user's documents (and the shared library's), the most recently changed first, with
    their chunk counts."""
    rows = await knowledge.documents.of(actor.owner())
    return JSON({"object": "list", "data": [document_view(row) for row in rows]})


@router.get("/documents", responses=errors(503))
async def list_documents_seed(knowledge: KnowledgeDep, actor: Actor) -> Response:
    """The seed's list: the same as `GET /v1/documents`."""
    return await list_documents(knowledge, actor)


@router.get("/v1/documents/{document_id}", responses=errors(400, 404, 503))
async def get_document(document_id: DocumentId, knowledge: KnowledgeDep, actor: Actor) -> Response:
    """One document with its chunks (text, page or lines, headings)."""
    documents = knowledge.documents
    row = await documents.get(actor.owner(), document_id)
    if row is None:
        raise NotFound(f"no document '{document_id}'", param="document_id")
    chunks = await documents.chunks_of(row)
    return JSON({**document_view(row), "content": chunks})


@router.delete("/v1/documents/{document_id}", responses=errors(400, 404, 503))
async def delete_document(
    document_id: DocumentId, knowledge: KnowledgeDep, actor: Actor
) -> Response:
    """Delete one of the user's documents: its chunks leave the vectors and the keyword index."""
    if not await knowledge.documents.delete(actor.owner(), document_id):
        raise NotFound(f"no document '{document_id}'", param="document_id")
    return JSON({"id": document_id, "object": "document.deleted", "deleted": True})


@router.post(
    "/api/v1/rag/index",
    status_code=202,
    responses=errors(400, 403, 503),
    openapi_extra=request_body(IndexBody),
)
async def index_directory(
    request: Request, services: ServicesDep, knowledge: KnowledgeDep, actor: Actor
) -> Response:
    """Index a directory tree (under INDEX_ALLOWED_ROOTS) as a background job: `.gitignore`
    respected, binaries, unsupported and huge files skipped with their reasons. Poll
    `GET /api/v1/rag/index/{id}` for its progress."""
    body = validate(IndexBody, parse_json(await request.body()))
    settings = knowledge.settings
    root = allowed(body.directory_path, settings.allowed_roots)
    job = services.jobs.start(
        knowledge.documents, actor.owner(body.user_id), root, settings.max_document_bytes
    )
    return JSON(job.public(), status_code=202)


@router.get("/api/v1/rag/index/{job_id}", responses=errors(400, 404))
async def index_job(job_id: JobId, services: ServicesDep, actor: Actor) -> Response:
    """An index job's progress: files found and processed, chunks, skips and errors."""
    return JSON(services.jobs.get(actor.owner(), job_id).public())


@router.post(
    "/api/v1/rag/search", responses=errors(400, 503), openapi_extra=request_body(SearchBody)
)
async def search(request: Request, knowledge: KnowledgeDep, actor: Actor) -> Response:
    """The user's passages most relevant to `query`: hybrid (vector and BM25 fused by
    reciprocal rank) unless `mode` says otherwise, with scores and locations."""
    body = validate(SearchBody, parse_json(await request.body()))
    passages = await knowledge.documents.search(
        actor.owner(body.user_id), body.query, body.k, body.mode, body.threshold
    )
    return JSON({"object": "list", "data": [passage.public() for passage in passages]})


@router.get("/api/v1/rag/stats", responses=errors(503))
async def stats(knowledge: KnowledgeDep, actor: Actor) -> Response:
    """The user's document and chunk counts by kind, the whole store's, and the embedder."""
    documents = knowledge.documents
    rows = await documents.of(actor.owner())
    by_kind: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = by_kind.setdefault(row.kind, {"documents": 0, "chunks": 0})
        counts["documents"] += 1
        counts["chunks"] += row.chunks
    body: dict[str, Any] = {
        "documents": len(rows),
        "chunks": sum(row.chunks for row in rows),
        "by_kind": by_kind,
        "store": await documents.totals(),
        "embedder": knowledge.embedder.describe() if knowledge.embedder else None,
        "settings": {
            "top_k": knowledge.settings.rag_top_k,
            "threshold": knowledge.settings.rag_threshold,
            "chunk_tokens": knowledge.settings.chunk_tokens,
            "chunk_overlap": knowledge.settings.chunk_overlap,
        },
    }
    return JSON(body)
