"""Folding a session's older turns into its long-term summary, off the response's path.

After a turn is saved, the turns the next turn could no longer send verbatim (beyond
SHORT_TERM_K, or beyond the history's share of TOKEN_BUDGET) are folded: the model that answered
is given the summary so far and those turns verbatim, and its reply becomes the new summary.
Folding is incremental (each fold starts from the last summary), runs as a background task (the
answer does not wait for it), one at a time per session (a Redis lock, so across replicas too),
in batches of at most TOKEN_BUDGET tokens, and is cancelled at shutdown: a fold that did not
finish changed nothing and is planned again after the session's next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from app.chat.context import Message, counter_for, fold_batches, text_of
from app.errors import GatewayError
from app.providers.router import Router
from app.state.sessions import SessionStore

log = logging.getLogger(__name__)

SUMMARY_SHARE = 4
"""The summary may take up to 1/SUMMARY_SHARE of TOKEN_BUDGET."""

FOLD_PROMPT = (
    "You keep the running summary of a conversation between a user and an assistant. Merge the "
    "new turns into the summary so far. Keep every fact the user gave about themselves (name, "
    "preferences, circumstances, goals), the decisions made, open questions and what the "
    "assistant promised; drop small talk. Write plain third-person sentences, at most {words} "
    "words. Reply with the updated summary only."
)
_ROLES = {"user": "User", "assistant": "Assistant"}


class Background:
    """Tasks that run off the response's path, at most one per key; cancelled at shutdown."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, key: str, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run `work()` unless a task for `key` is still running; whether it was started."""
        if key in self._tasks:
            return False
        task = asyncio.create_task(_logged(key, work), name=key)
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))
        return True

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _logged(key: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        await work()
    except Exception:
        log.exception("background task %s failed", key)


def transcript(summary: str, turns: Sequence[Message]) -> str:
    lines = (f"{_ROLES.get(str(m.get('role')), 'Other')}: {text_of(m)}" for m in turns)
    return f"Summary so far:\n{summary.strip() or '(none yet)'}\n\nNew turns:\n" + "\n".join(lines)


USER_SAID = "The user said:"


def usable(summary: str) -> bool:
    """False for an empty summary, or one that repeats the instructions or its own lines, as
    small base models do."""
    lines = [line.strip() for line in summary.splitlines() if line.strip()]
    return bool(lines) and FOLD_PROMPT[:40] not in summary and len(set(lines)) == len(lines)


def compose(
    prose: str,
    previous: str,
    turns: Sequence[Message],
    limit: int,
    count: Callable[[str], int],
) -> str:
    """The summary to store: the model's prose (when usable, in at most half of `limit` tokens),
    then what the user said in their own words, oldest first, kept across folds, cut at `limit`
    tokens. Whatever the model writes, the facts the user gave first, such as a name, stay."""
    said = [line for line in previous.splitlines() if line.startswith(USER_SAID)]
    said += [
        f"{USER_SAID} {' '.join(text_of(m).split())}"
        for m in turns
        if m.get("role") == "user" and text_of(m).strip()
    ]
    parts = []
    if usable(prose):
        prose = "\n".join(line for line in prose.splitlines() if not line.startswith(USER_SAID))
        while prose and count(prose) > limit // 2:
            prose = prose[: len(prose) * 3 // 4].rsplit(" ", 1)[0]
        parts.append(prose.strip())
    kept: list[str] = []
    for part in [*filter(None, parts), *said]:
        if count("\n".join([*kept, part])) > limit:
            break
        kept.append(part)
    return "\n".join(kept)


class Folder:
    def __init__(
        self,
        router: Router,
        store: SessionStore,
        background: Background,
        *,
        token_budget: int,
        timeout: float,
    ) -> None:
        self._router = router
        self._store = store
        self._background = background
        self._budget = token_budget
        self._timeout = timeout

    def schedule(self, session_id: str, model: str, upto: int) -> None:
        """Fold the session's messages before index `upto` in the background."""
        self._background.start(f"fold {session_id}", lambda: self.fold(session_id, model, upto))

    async def fold(self, session_id: str, model: str, upto: int) -> None:
        """Fold the session's messages before index `upto` into its summary with `model`,
        unless another fold of this session is under way."""
        try:
            async with self._store.folding(session_id, self._timeout) as mine:
                if mine:
                    await self._fold(session_id, model, upto)
        except GatewayError as exc:
            log.warning("session %s: folding into the summary failed: %s", session_id, exc.message)

    async def _fold(self, session_id: str, model: str, upto: int) -> None:
        counter = counter_for(model)
        while True:
            session, unfolded = await self._store.load(session_id)
            if session is None or session.folded >= upto or not unfolded:
                return
            batch = fold_batches(
                unfolded[: upto - session.folded],
                budget=self._budget,
                counter=counter,
            )[0]
            prose = await self.summarise(model, session.summary, batch)
            limit = self._budget // SUMMARY_SHARE
            summary = compose(prose, session.summary, batch, limit, counter.count)
            now = session.folded + len(batch)
            if not summary or not await self._store.save_summary(
                session_id, summary, was=session.folded, now=now
            ):
                return
            log.info("session %s: messages up to %d folded into the summary", session_id, now)

    async def summarise(self, model: str, summary: str, turns: Sequence[Message]) -> str:
        """The summary with `turns` merged in, as `model` writes it; empty if it wrote none."""
        share = self._budget // SUMMARY_SHARE
        messages = [
            {"role": "system", "content": FOLD_PROMPT.format(words=share * 3 // 4)},
            {"role": "user", "content": transcript(summary, turns)},
        ]
        route = await self._router.resolve(model)
        return await self._router.ask(
            route, messages, max_tokens=share, temperature=0.2, within=self._timeout
        )
