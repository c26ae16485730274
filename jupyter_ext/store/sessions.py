"""The store of sessions and their events, on the database of :class:`~.db.Store`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, fields

import aiosqlite

from ..sessions.models import Session, SessionEvent
from .db import Store

_COLUMNS = [f.name for f in fields(Session)]


class SessionStore:
    """Sessions and session events in the ``sessions`` and ``session_events`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def db(self) -> aiosqlite.Connection:
        return self.store.db

    async def put(self, session: Session) -> None:
        """Insert or update a session."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")
        await self.db.execute(
            f"INSERT INTO sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
            f" ON CONFLICT(id) DO UPDATE SET {updates}", astuple(session))
        await self.db.commit()

    async def get(self, box_id: str, session_id: str) -> Session | None:
        """One session of a box."""
        sql = "SELECT * FROM sessions WHERE id = ? AND box_id = ?"
        async with self.db.execute(sql, (session_id, box_id)) as cur:
            row = await cur.fetchone()
        return None if row is None else Session(**dict(row))

    async def list(self, box_id: str | None = None, live: bool = False) -> list[Session]:
        """The sessions of a box (or all), newest first; only those not dead if ``live``."""
        sql = "SELECT * FROM sessions WHERE (? IS NULL OR box_id = ?)"
        sql += " AND status != 'dead'" if live else ""
        async with self.db.execute(sql + " ORDER BY rowid DESC", (box_id, box_id)) as cur:
            return [Session(**dict(row)) for row in await cur.fetchall()]

    async def delete(self, session_id: str) -> None:
        """Delete a session with its events."""
        await self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        await self.db.commit()

    async def add_events(self, session_id: str, events: Iterable[SessionEvent]) -> None:
        """Store a batch of events in one transaction."""
        rows = [(session_id, e.seq, e.event, e.msg_type, e.data) for e in events]
        await self.db.executemany(
            "INSERT OR IGNORE INTO session_events (session_id, seq, channel, msg_type, data)"
            " VALUES (?, ?, ?, ?, ?)", rows)
        await self.db.commit()

    async def events(self, session_id: str, after: int, limit: int = 256) -> list[SessionEvent]:
        """Up to ``limit`` stored events with ``seq > after``, in order."""
        sql = ("SELECT seq, channel, msg_type, data FROM session_events"
               " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?")
        async with self.db.execute(sql, (session_id, after, limit)) as cur:
            return [SessionEvent(*row) for row in await cur.fetchall()]

    async def tally(self, session_id: str) -> tuple[int, int, bool]:
        """The seq the next event of a session gets, the bytes of its stored events' data,
        and whether it has a ``truncated`` event (its output passed the quota)."""
        sql = ("SELECT COALESCE(MAX(seq), -1) + 1, COALESCE(SUM(LENGTH(CAST(data AS BLOB))), 0),"
               " COALESCE(MAX(msg_type = 'truncated'), 0) FROM session_events"
               " WHERE session_id = ?")
        async with self.db.execute(sql, (session_id,)) as cur:
            seq, size, truncated = await cur.fetchone()
        return seq, size, bool(truncated)

    async def next_seq(self, session_id: str) -> int:
        """The seq the next event of a session gets."""
        sql = "SELECT COALESCE(MAX(seq), -1) + 1 FROM session_events WHERE session_id = ?"
        async with self.db.execute(sql, (session_id,)) as cur:
            return (await cur.fetchone())[0]
