"""Chats grounded in the user's documents and memories, on a real gateway: what the upstream is
sent, and how each wire carries the sources and what was remembered."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai

from tests.api.sse import sse_events
from tests.conftest import MakeGateway
from tests.fakes.openai_upstream import OpenAIUpstreamState
from tests.knowledge.files import BOILER

QUESTION = "How long is the warranty on the boiler?"


def ask(url: str, text: str, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "openai/gpt-test", "messages": [{"role": "user", "content": text}], **body},
        headers=headers,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def grounding(upstream: OpenAIUpstreamState) -> str:
    """The grounding system message of the last request upstream ('' when there is none)."""
    messages = upstream.requests[-1]["messages"]
    assert messages[-1]["role"] == "user"
    before = messages[-2] if len(messages) > 1 else {}
    content = before.get("content", "")
    if before.get("role") == "system" and ("Passages" in content or "know about" in content):
        return str(content)
    return ""


def with_document(make_gateway: MakeGateway, **settings: Any) -> str:
    url = make_gateway(**settings)
    resp = httpx.post(f"{url}/v1/documents", files={"file": ("boiler.md", BOILER)}, timeout=60)
    assert resp.status_code == 201, resp.text
    return url


def test_the_passages_go_before_the_question_numbered_and_come_back_as_annotations(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway)
    answer = ask(url, QUESTION)
    placed = grounding(upstream)
    assert "\n\nPassages from the user's documents." in placed  # after the persona
    assert "[1] (boiler.md, line" in placed
    assert "seven years" in placed.split("[2]")[0]
    annotations = answer["choices"][0]["message"]["annotations"]
    first = annotations[0]
    assert first["type"] == "url_citation"
    assert first["url_citation"]["url"].startswith(f"{url}/v1/documents/doc-")
    assert first["url_citation"]["title"].startswith("boiler.md (line")
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    completion = sdk.chat.completions.create(
        model="openai/gpt-test", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.choices[0].message.annotations
    assert (
        completion.choices[0].message.annotations[0].url_citation.url
        == first["url_citation"]["url"]
    )
    stream = sdk.chat.completions.create(
        model="openai/gpt-test", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from the fake upstream."
    sdk.close()


def test_a_question_no_document_answers_gets_no_passages(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway)
    answer = ask(url, "Who painted the Mona Lisa?")
    assert grounding(upstream) == ""
    assert "annotations" not in answer["choices"][0]["message"]


def test_rag_false_and_background_tasks_do_not_retrieve(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway)
    ask(url, QUESTION, rag=False)
    assert grounding(upstream) == ""
    assert "rag" not in upstream.requests[-1]
    messages = [{"role": "user", "content": QUESTION}]
    wires: list[tuple[str, dict[str, Any]]] = [
        ("/v1/responses", {"input": QUESTION}),
        ("/v1/messages", {"max_tokens": 50, "messages": messages}),
        ("/chat", {"message": QUESTION, "user_id": "anonymous"}),
    ]
    for path, extra in wires:
        for rag in (True, False):
            body = {"model": "openai/gpt-test", "rag": rag, **extra}
            assert httpx.post(f"{url}{path}", json=body, timeout=30).status_code == 200
            assert (grounding(upstream) != "") is rag, (path, rag)
            assert "rag" not in upstream.requests[-1]
    ask(url, QUESTION, headers={"X-OpenWebUI-Task": "title_generation"})
    assert grounding(upstream) == ""
    ask(url, "### Task:\nGenerate a concise title.\n" + QUESTION)
    assert grounding(upstream) == ""
    bad = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "openai/gpt-test",
            "messages": [{"role": "user", "content": "x"}],
            "rag": "maybe",
        },
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "rag"
    refusals: list[tuple[str, str, object, dict[str, Any]]] = [
        ("/v1/chat/completions", "memory", "no", {"messages": [{"role": "user", "content": "x"}]}),
        ("/v1/chat/completions", "rag", 0, {"messages": [{"role": "user", "content": "x"}]}),
        ("/v1/responses", "rag", "yes", {"input": "x"}),
        (
            "/v1/messages",
            "memory",
            1,
            {"max_tokens": 9, "messages": [{"role": "user", "content": "x"}]},
        ),
        ("/chat", "rag", "false", {"message": "x", "user_id": "anonymous"}),
    ]
    for path, field, value, extra in refusals:
        refused = httpx.post(
            f"{url}{path}", json={"model": "openai/gpt-test", field: value, **extra}
        )
        assert refused.status_code == 400, (path, field, refused.text)
        error = refused.json()["error"]  # Anthropic's error names no param
        assert error["message"] == f"Invalid '{field}': Input should be a valid boolean"
        assert error.get("param", field) == field


def test_openwebui_gets_a_citation_event_per_passage_before_the_text(
    make_gateway: MakeGateway,
) -> None:
    url = with_document(make_gateway)
    body = {
        "model": "openai/gpt-test",
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json=body,
        headers={"X-OpenWebUI-Chat-Id": "c1"},
        timeout=30,
    ) as resp:
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]
    sources = [e["event"]["data"] for e in events if e.get("event", {}).get("type") == "source"]
    assert sources
    first_text = next(
        i for i, e in enumerate(events) if e.get("choices", [{}])[0].get("delta", {}).get("content")
    )
    assert all(i < first_text for i, e in enumerate(events) if "event" in e)
    first = sources[0]
    assert first["source"]["id"].endswith("#1")
    assert first["source"]["name"].startswith("boiler.md (line")
    assert "seven years" in first["document"][0]
    assert first["metadata"] == [{"source": first["source"]["id"], "name": first["source"]["name"]}]
    assert 0 < first["distances"][0] <= 1
    assert len({s["source"]["id"] for s in sources}) == len(sources)
    assert not any("annotations" in (e.get("choices") or [{}])[0].get("delta", {}) for e in events)


def test_facts_are_remembered_recalled_in_any_session_and_superseded(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway()
    _, events = sse_events(
        url,
        {
            "model": "openai/gpt-test",
            "stream": True,
            "messages": [{"role": "user", "content": "Hi! My name is Ada and I live in Paris."}],
        },
    )
    assert events[-1] == "[DONE]"
    memories = httpx.get(f"{url}/v1/memories").json()["data"]
    assert sorted(m["text"] for m in memories) == [
        "The user lives in Paris.",
        "The user's name is Ada.",
    ]
    ask(url, "Where do I live?")
    assert "The user lives in Paris." in grounding(upstream)
    ask(url, "I moved to Berlin last month.")
    texts = [m["text"] for m in httpx.get(f"{url}/v1/memories").json()["data"]]
    assert "The user lives in Berlin." in texts
    assert "The user lives in Paris." not in texts
    ask(url, "Which city do I live in now?")
    placed = grounding(upstream)
    assert "Berlin" in placed
    assert "Paris" not in placed
    chat = httpx.post(
        f"{url}/chat", json={"user_id": "anonymous", "message": "What's my name?"}, timeout=30
    )
    assert chat.status_code == 200, chat.text
    assert "The user's name is Ada." in grounding(upstream)
    assert chat.json()["memories"] == []


def test_memories_can_be_listed_added_deleted_and_the_user_forgotten(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway)
    added = httpx.post(f"{url}/v1/memories", json={"text": "I am allergic to peanuts."})
    assert added.status_code == 201, added.text
    change = added.json()["data"][0]
    assert change["event"] == "add"
    assert "peanuts" in change["text"]
    plain = httpx.post(f"{url}/v1/memories", json={"content": "Prefers answers in bullet points"})
    assert plain.json()["data"][0]["text"] == "Prefers answers in bullet points"
    listed = httpx.get(f"{url}/v1/memories").json()["data"]
    assert len(listed) == 2
    gone = httpx.delete(f"{url}/v1/memories/{change['id']}")
    assert gone.json() == {"id": change["id"], "object": "memory.deleted", "deleted": True}
    assert httpx.delete(f"{url}/v1/memories/{change['id']}").status_code == 404
    assert httpx.delete(f"{url}/v1/memories/not-a-memory").status_code == 404
    assert httpx.post(f"{url}/v1/memories", json={"text": ""}).status_code == 400
    session = httpx.post(f"{url}/chat", json={"user_id": "anonymous", "message": "hello"})
    assert session.status_code == 200
    forgot = httpx.delete(f"{url}/v1/memories?user_id=anonymous")
    assert forgot.status_code == 200, forgot.text
    assert forgot.json() == {
        "object": "forget",
        "deleted": True,
        "memories": 1,
        "documents": 1,
        "sessions": 1,
        "feedback": 0,
    }
    assert httpx.get(f"{url}/v1/memories").json()["data"] == []
    assert httpx.get(f"{url}/v1/documents").json()["data"] == []
    assert httpx.get(f"{url}/v1/sessions?user_id=anonymous").json()["data"] == []
    ask(url, QUESTION)
    assert grounding(upstream) == ""


def test_openwebui_users_and_keys_keep_their_own_memories(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(api_keys=["service"], trust_user_headers=True)
    key = {"Authorization": "Bearer service"}
    alice = {**key, "X-OpenWebUI-User-Id": "alice"}
    bob = {**key, "X-OpenWebUI-User-Id": "bob"}
    ask(url, "My name is Alice and I work at Acme.", headers=alice)
    ask(url, "What is my name?", headers=bob)
    assert grounding(upstream) == ""
    ask(url, "What is my name?", headers=alice)
    assert "Alice" in grounding(upstream)
    assert httpx.get(f"{url}/v1/memories", headers=bob).json()["data"] == []
    assert len(httpx.get(f"{url}/v1/memories", headers=alice).json()["data"]) == 2
    ask(url, "My name is Carol.", headers=key, user="carol")
    names = [
        m["text"] for m in httpx.get(f"{url}/v1/memories?user_id=carol", headers=key).json()["data"]
    ]
    assert names == ["The user's name is Carol."]


def test_memory_false_neither_recalls_nor_learns(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway()
    ask(url, "My name is Ada.", memory=False)
    assert httpx.get(f"{url}/v1/memories").json()["data"] == []
    ask(url, "My name is Ada.")
    ask(url, "What is my name?", memory=False)
    assert grounding(upstream) == ""


def test_a_memory_model_reads_the_message_for_facts_in_the_background(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = make_gateway(memory_model="openai/replies")
    ask(url, "My name is Ada.")
    stored = httpx.get(f"{url}/v1/memories").json()["data"]
    assert [m["text"] for m in stored] == ["The user's name is Ada."]
    upstream.replies = [
        '{"facts": ["The user has a cat named Miso."]}',
        '{"memory": [{"id": "0", "text": "The user\'s name is Ada.", "event": "NONE"},'
        ' {"id": "1", "text": "The user has a cat named Miso.", "event": "ADD"}]}',
    ]
    ask(url, "We adopted a little tabby last week, Miso.")
    for _ in range(100):
        texts = [m["text"] for m in httpx.get(f"{url}/v1/memories").json()["data"]]
        if len(texts) == 2:
            break
        time.sleep(0.05)
    assert texts == ["The user's name is Ada.", "The user has a cat named Miso."]
    asked = [r["messages"][1]["content"] for r in upstream.requests if r["model"] == "replies"]
    assert len(asked) == 3  # the first message was read too (the model found nothing)
    assert asked[1] == "Message: We adopted a little tabby last week, Miso."
    assert '"text": "The user\'s name is Ada."' in asked[2]


def test_responses_and_messages_turns_are_grounded_too(
    make_gateway: MakeGateway, upstream: OpenAIUpstreamState
) -> None:
    url = with_document(make_gateway)
    resp = httpx.post(
        f"{url}/v1/responses",
        json={"model": "openai/gpt-test", "input": QUESTION + " echo: Seven years [1]."},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert "seven years" in grounding(upstream)
    (part,) = resp.json()["output"][0]["content"]
    assert part["text"] == "Seven years [1]."
    (cited,) = part["annotations"]
    assert cited["type"] == "url_citation"
    assert (cited["start_index"], cited["end_index"]) == (12, 15)
    assert cited["url"].startswith(f"{url}/v1/documents/doc-")
    resp = httpx.post(
        f"{url}/v1/messages",
        json={
            "model": "openai/gpt-test",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": QUESTION}],
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert "seven years" in grounding(upstream)
