"""Per-user order across concurrent requests.

Braze may apply two requests for one user at the same time, and the later write can undo the earlier
one (docs/braze.md, Consistency and ordering). So a request that sets a user's attributes waits
until every earlier request that set that user's attributes has its final answer. Claims are taken
in the order batches leave the packer; users who do not repeat cost a few dict operations per
request and never wait.
"""

from __future__ import annotations

import asyncio
from collections import deque

from importer.models import Batch


class UserOrder:
    def __init__(self) -> None:
        self._latest: dict[str, asyncio.Future[None]] = {}
        # Claims some of whose users a later claim took over: their release must not drop
        # those users' entries. Every other claim releases all its users at once, in C.
        self._overtaken: set[asyncio.Future[None]] = set()

    def claim(self, batch: Batch) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
        """Call in packer order. Returns what to wait for, and this batch's own completion."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        latest = self._latest
        users = batch.attribute_users
        if latest.keys().isdisjoint(users):  # the usual case: no user of this batch in flight
            latest.update(dict.fromkeys(users, mine))
            return [], mine
        earlier: list[asyncio.Future[None]] = []
        for user in users:
            previous = latest.get(user)
            if previous is not None and previous not in earlier:
                earlier.append(previous)
                self._overtaken.add(previous)
            latest[user] = mine
        return earlier, mine

    @staticmethod
    async def wait(earlier: list[asyncio.Future[None]]) -> None:
        for future in earlier:
            if not future.done():
                await asyncio.shield(future)

    def release(self, batch: Batch, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        latest = self._latest
        if mine not in self._overtaken:
            deque(map(latest.pop, batch.attribute_users), maxlen=0)
            return
        self._overtaken.discard(mine)
        for user in batch.attribute_users:
            if latest.get(user) is mine:
                del latest[user]

    def __len__(self) -> int:
        return len(self._latest)
