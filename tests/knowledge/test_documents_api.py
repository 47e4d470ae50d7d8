"""Documents over HTTP on a real gateway: real files, the real embedding model, embedded Chroma."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MakeGateway
from tests.knowledge.files import BOILER, pdf, word


def upload(
    url: str, name: str, data: bytes, path: str = "/v1/documents", **kw: Any
) -> httpx.Response:
    return httpx.post(f"{url}{path}", files={"file": (name, data)}, timeout=60, **kw)


def search(url: str, query: str, **body: Any) -> list[dict[str, Any]]:
    resp = httpx.post(f"{url}/api/v1/rag/search", json={"query": query, **body}, timeout=30)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_upload_list_read_search_and_delete(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    created = upload(url, "boiler.md", BOILER.encode())
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["status"] == "created"
    assert (document["name"], document["title"], document["kind"]) == (
        "boiler.md",
        "Boiler manual",
        "markdown",
    )
    assert document["chunks"] >= 1
    listed = httpx.get(f"{url}/v1/documents").json()["data"]
    assert [(d["id"], d["chunks"]) for d in listed] == [(document["id"], document["chunks"])]
    assert httpx.get(f"{url}/documents").json()["data"] == listed
    read = httpx.get(f"{url}/v1/documents/{document['id']}").json()
    assert "seven years" in " ".join(chunk["text"] for chunk in read["content"])

    found = search(url, "How long is the guarantee valid?")
    assert found[0]["document_id"] == document["id"]
    assert "seven years" in found[0]["text"]
    assert found[0]["headings"] == ["Boiler manual", "Warranty"]
    assert found[0]["lines"]
    assert found[0]["location"].startswith("line")
    assert found[0]["score"] > 0
    assert 0 < found[0]["similarity"] <= 1
    assert search(url, "Who won the football world cup in 1998?") == []

    deleted = httpx.delete(f"{url}/v1/documents/{document['id']}")
    assert deleted.json() == {"id": document["id"], "object": "document.deleted", "deleted": True}
    assert httpx.delete(f"{url}/v1/documents/{document['id']}").status_code == 404
    assert httpx.get(f"{url}/v1/documents/{document['id']}").status_code == 404
    assert search(url, "How long is the guarantee valid?") == []


def test_the_same_content_is_stored_once_and_a_change_replaces_it(
    make_gateway: MakeGateway,
) -> None:
    url = make_gateway()
    first = upload(url, "boiler.md", BOILER.encode(), path="/upload").json()
    again = upload(url, "boiler.md", BOILER.encode())
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["status"]) == (first["id"], "unchanged")
    changed = upload(url, "boiler.md", BOILER.replace("seven years", "ten years").encode())
    assert changed.status_code == 200
    assert (changed.json()["id"], changed.json()["version"]) == (first["id"], 2)
    assert changed.json()["status"] == "replaced"
    texts = " ".join(p["text"] for p in search(url, "warranty length", threshold=False, k=10))
    assert "ten years" in texts
    assert "seven years" not in texts
    stats = httpx.get(f"{url}/api/v1/rag/stats").json()
    assert stats["documents"] == 1
    assert stats["store"]["chunks"] == stats["store"]["vectors"] == changed.json()["chunks"]


def test_pdf_and_docx_passages_keep_their_pages_and_headings(make_gateway: MakeGateway) -> None:
    url = make_gateway()
    pages = [
        "Introduction. This handbook covers the office and its rules.",
        "Parking. Visitors park on level minus two; staff badges open the gate on level minus one.",
        "Holidays. Every employee gets twenty-seven paid days off per calendar year.",
    ]
    assert upload(url, "handbook.pdf", pdf(pages)).status_code == 201
    docx = word("Travel policy", {"Flights": "Book economy for flights shorter than six hours."})
    assert upload(url, "travel.docx", docx).status_code == 201
    holiday = search(url, "How many vacation days do employees get each year?")
    assert (holiday[0]["name"], holiday[0]["page"], holiday[0]["location"]) == (
        "handbook.pdf",
        3,
        "page 3",
    )
    flights = search(url, "Which class should I fly on a short trip?")
    assert flights[0]["name"] == "travel.docx"
    assert flights[0]["headings"][-1] == "Flights"


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("broken.pdf", pdf(["Some text."])[:200], 400, "broken.pdf: "),
        ("secret.pdf", pdf(["Hidden."], password="pw"), 400, "secret.pdf: the PDF is encrypted"),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00", 400, "tool.exe: "),
        ("empty.txt", b"", 400, "empty.txt: "),
    ],
)
def test_bad_files_are_refused_by_name_and_nothing_is_stored(
    make_gateway: MakeGateway, name: str, data: bytes, status: int, message: str
) -> None:
    url = make_gateway()
    resp = upload(url, name, data)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"].startswith(message)
    assert error["param"] == "file"
    assert httpx.get(f"{url}/v1/documents").json()["data"] == []
    assert httpx.get(f"{url}/api/v1/rag/stats").json()["store"] == {
        "documents": 0,
        "chunks": 0,
        "vectors": 0,
    }


def test_size_and_form_are_checked_first(make_gateway: MakeGateway) -> None:
    url = make_gateway(max_document_bytes=2048)
    big = upload(url, "big.txt", b"word " * 1000)
    assert big.status_code == 413
    assert "big.txt: 5000 bytes is over MAX_DOCUMENT_BYTES (2048)" in big.json()["error"]["message"]
    not_multipart = httpx.post(f"{url}/v1/documents", json={"file": "x"})
    assert not_multipart.status_code == 400
    assert not_multipart.json()["error"]["param"] == "file"
    no_file = httpx.post(f"{url}/v1/documents", data={"name": "x"}, files={"other": ("a", b"b")})
    assert no_file.status_code == 400
    assert httpx.get(f"{url}/v1/documents/doc-0000").status_code == 404
    unknown = httpx.get(f"{url}/v1/documents/not-an-id")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no document 'not-an-id'"
    assert httpx.get(f"{url}/api/v1/rag/index/not-a-job").status_code == 404
    bad_search = httpx.post(f"{url}/api/v1/rag/search", json={"query": "", "k": 0})
    assert bad_search.status_code == 400


def test_one_users_documents_never_reach_another(make_gateway: MakeGateway) -> None:
    url = make_gateway(api_keys=["key-a", "key-b"])
    alice = {"Authorization": "Bearer key-a"}
    bob = {"Authorization": "Bearer key-b"}
    assert upload(url, "boiler.md", BOILER.encode(), headers=alice).status_code == 201
    query = {"query": "How long is the warranty?"}
    as_bob = httpx.post(f"{url}/api/v1/rag/search", json=query, headers=bob).json()
    assert as_bob["data"] == []
    assert httpx.get(f"{url}/v1/documents", headers=bob).json()["data"] == []
    as_alice = httpx.post(f"{url}/api/v1/rag/search", json=query, headers=alice).json()
    assert as_alice["data"]
    document_id = as_alice["data"][0]["document_id"]
    assert httpx.get(f"{url}/v1/documents/{document_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{url}/v1/documents/{document_id}", headers=bob).status_code == 404


def test_a_directory_is_indexed_as_a_job_within_the_allowed_roots(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "build").mkdir()
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "docs" / "boiler.md").write_text(BOILER)
    (root / "main.py").write_text("def greet(name):\n    return f'hello {name}'\n")
    (root / "build" / "out.md").write_text("# generated\n")
    (root / "debug.log").write_text("noise\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    url = make_gateway(index_allowed_roots=[str(tmp_path)])
    outside = httpx.post(f"{url}/api/v1/rag/index", json={"directory_path": "/etc"})
    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "permission_denied"
    started = httpx.post(f"{url}/api/v1/rag/index", json={"directory_path": str(root)})
    assert started.status_code == 202, started.text
    job = started.json()
    for _ in range(300):
        job = httpx.get(f"{url}/api/v1/rag/index/{job['id']}").json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert (job["files"], job["processed"], job["created"], job["progress"]) == (2, 2, 2, 1.0)
    skipped = {item["path"]: item["reason"] for item in job["skipped"]}
    assert skipped["build"] == "ignored by .gitignore"
    assert skipped["debug.log"] == "ignored by .gitignore"
    assert skipped["logo.png"] == "binary"
    names = {d["name"] for d in httpx.get(f"{url}/v1/documents").json()["data"]}
    assert names == {"project/docs/boiler.md", "project/main.py"}
    assert search(url, "function that says hello to someone")[0]["name"] == "project/main.py"


def test_indexing_is_off_without_allowed_roots(make_gateway: MakeGateway, tmp_path: Path) -> None:
    url = make_gateway()
    resp = httpx.post(f"{url}/api/v1/rag/index", json={"directory_path": str(tmp_path)})
    assert resp.status_code == 403
    assert "INDEX_ALLOWED_ROOTS" in resp.json()["error"]["message"]
