"""Commands of one process on the same row wait their turn here, not in PostgreSQL.

The optimistic path (:mod:`command_side.postgres`) reads without locks; two commands of
one process that read the same stock row at once both compute from it and one save must
fail and run again, locking. Under the benchmark's load (32 clients ordering from 20
products) that was ~20% of orders. Queueing them in the process costs nothing in
round trips: the second reads once the first has saved, and its save matches.

Only a process's own commands queue here; commands of other processes still meet at the
version guards, which stay the correctness guarantee. Keys are taken in sorted order and
all at once per unit of work, so two commands never wait for each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class RowQueue:
    """FIFO locks by row key (``stock:SKU``), created on first use and dropped when free."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def __len__(self) -> int:
        """Keys currently held or waited for."""
        return len(self._locks)

    async def take(self, keys: Iterable[str]) -> list[str]:
        """Wait for every key (in sorted order); the keys taken, to :meth:`give_back`."""
        taken: list[str] = []
        try:
            for key in sorted(set(keys)):
                lock = self._locks.get(key)
                if lock is None:
                    lock = self._locks[key] = asyncio.Lock()
                self._users[key] = self._users.get(key, 0) + 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._leave(key)
                    raise
                taken.append(key)
        except BaseException:
            self.give_back(taken)
            raise
        return taken

    def give_back(self, keys: list[str]) -> None:
        """Release keys returned by :meth:`take`."""
        for key in keys:
            self._locks[key].release()
            self._leave(key)

    def _leave(self, key: str) -> None:
        users = self._users[key] - 1
        if users:
            self._users[key] = users
        else:
            del self._users[key], self._locks[key]
