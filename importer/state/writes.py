"""Which users this run's commits wrote (``Writes``): what judges a conversion worker's
verdict (importer.state.snapshot), made from a snapshot older than the main process's last
commits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class Writes:
    """Which users the last commits of this run wrote: what a worker's snapshot may have
    missed. Kept for the last ``KEPT`` users written (a verdict is judged a few chunks after
    its snapshot); a verdict older than that is not taken."""

    KEPT = 20_000

    def __init__(self, commit: int) -> None:
        self.commit = commit  # the last commit made
        self._floor = commit  # a snapshot older than this is not judged
        self._by_user: dict[str, int] = {}
        self._log: deque[tuple[int, list[str]]] = deque()
        self._size = 0

    def add(self, users: Iterable[str]) -> None:
        """One more commit, which wrote these users' rows."""
        self.commit = commit = self.commit + 1
        written = list(users)
        self._by_user.update(dict.fromkeys(written, commit))
        self._log.append((commit, written))
        self._size += len(written)
        while self._size > self.KEPT:
            old, gone = self._log.popleft()
            self._size -= len(gone)
            self._floor = old
            by_user = self._by_user
            for user in gone:
                if by_user.get(user) == old:
                    del by_user[user]

    def unseen(self, commit: int, users: tuple[str, ...]) -> bool:
        """Could a snapshot that saw up to ``commit`` have missed a write of one of ``users``?"""
        if commit < self._floor:
            return True
        if commit >= self.commit:
            return False
        by_user = self._by_user
        for user in users:  # noqa: SIM110 - a loop: no generator per row
            if by_user.get(user, commit) > commit:
                return True
        return False
