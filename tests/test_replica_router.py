"""The replica router's decisions, with a fake replica, primary and floor board.

The whole path with real processes is ``tests/test_replica.py``; these pin the rules that
are hard to provoke there: a floor lookup that began before a read is not trusted by it,
a board that lost its value is repaired from the primary, failures route to the primary.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.exc import DBAPIError

from data.replica import (
    ReplicaBehind,
    ReplicaRouter,
    ReplicaSettings,
    ReplicaState,
    parse_lsn,
    replica_failure,
)


class Board:
    """A floor board whose lookups wait until the test lets them answer."""

    def __init__(self) -> None:
        self.value: int | None = 0
        self.lookups: list[asyncio.Future[None]] = []
        self.raised: list[int] = []
        self.down = False

    async def raise_to(self, lsn: int) -> None:
        if self.down:
            raise ConnectionError("board down")
        self.raised.append(lsn)
        self.value = max(self.value or 0, lsn)

    async def newest(self) -> int | None:
        if self.down:
            raise ConnectionError("board down")
        gate = asyncio.get_running_loop().create_future()
        self.lookups.append(gate)
        await gate
        return self.value

    async def close(self) -> None:
        pass


class World:
    def __init__(self) -> None:
        self.replay = 100
        self.primary = 500
        self.routes: list[tuple[str, str]] = []
        self.board = Board()
        self.router = ReplicaRouter(
            self.probe, self.primary_lsn, ReplicaSettings(poll_seconds=0.0, retry_seconds=60.0)
        )
        self.router.board = self.board
        self.router.on_route = lambda target, reason: self.routes.append((target, reason))

    async def probe(self) -> ReplicaState:
        return ReplicaState(self.replay, 0.0)

    async def primary_lsn(self) -> int:
        return self.primary

    async def up(self) -> None:
        await self.router.probe()
        assert self.router.up


async def _settle() -> None:
    """Lets every task that can run, run."""
    for _ in range(10):
        await asyncio.sleep(0)


async def _answer_lookups(board: Board) -> None:
    await _settle()
    for gate in board.lookups:
        if not gate.done():
            gate.set_result(None)
    await _settle()


def test_lsn_text_to_number() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert parse_lsn("0/0") == 0
    assert parse_lsn(None) == 0


def test_which_failures_move_a_read_to_the_primary() -> None:
    assert replica_failure(ConnectionRefusedError()) == "gone"
    assert replica_failure(asyncpg.exceptions.AdminShutdownError()) == "gone"
    assert replica_failure(asyncpg.exceptions.CannotConnectNowError()) == "gone"
    assert replica_failure(asyncpg.exceptions.SerializationError()) == "conflict"
    assert replica_failure(ReplicaBehind()) == "conflict"
    wrapped = DBAPIError("SELECT 1", None, asyncpg.exceptions.AdminShutdownError())
    assert replica_failure(wrapped) == "gone"
    # The statement's own errors would be the same on the primary: not moved.
    assert replica_failure(asyncpg.exceptions.UndefinedTableError()) is None
    assert replica_failure(ValueError("bad")) is None


async def test_a_read_goes_to_the_replica_only_once_it_has_replayed_the_floor() -> None:
    world = World()
    await world.up()
    read = asyncio.ensure_future(world.router.use_replica())
    await _answer_lookups(world.board)
    assert await asyncio.wait_for(read, 5) is True

    await world.router.committed(200)  # this process's write: known without a lookup
    assert world.board.raised == [200]
    assert await world.router.use_replica() is False
    assert world.board.lookups[1:] == []

    world.replay = 200
    await world.up()
    world.board.value = 300  # another process's write, heard of through the board
    read = asyncio.ensure_future(world.router.use_replica())
    await _answer_lookups(world.board)
    assert await asyncio.wait_for(read, 5) is False
    assert world.routes == [
        ("replica", "caught_up"),
        ("primary", "lagging"),
        ("primary", "lagging"),
    ]


async def test_a_lookup_begun_before_a_read_is_not_trusted_by_it() -> None:
    world = World()
    await world.up()
    early = asyncio.ensure_future(world.router.use_replica())
    await _settle()
    assert len(world.board.lookups) == 1
    # Another process's write is acknowledged while that lookup is on its way; reads
    # that start now must wait for a lookup sent after them, which they share.
    world.board.value = 400
    late = [asyncio.ensure_future(world.router.use_replica()) for _ in range(3)]
    await _settle()
    assert len(world.board.lookups) == 1
    world.board.value = 0  # as the first lookup saw it
    world.board.lookups[0].set_result(None)
    await _settle()
    assert await asyncio.wait_for(early, 5) is True
    world.board.value = 400
    assert len(world.board.lookups) == 2  # one more, for all three
    await _answer_lookups(world.board)
    assert [await asyncio.wait_for(read, 5) for read in late] == [False, False, False]


async def test_a_board_that_lost_the_floor_is_raised_again_from_the_primary() -> None:
    world = World()
    world.replay = 600
    await world.up()
    world.board.value = None  # Redis restarted empty
    read = asyncio.ensure_future(world.router.use_replica())
    await _answer_lookups(world.board)
    assert await asyncio.wait_for(read, 5) is True
    assert world.board.raised == [500]

    world.replay = 450
    await world.up()
    read = asyncio.ensure_future(world.router.use_replica())
    await _answer_lookups(world.board)
    assert await asyncio.wait_for(read, 5) is False


async def test_failures_send_reads_to_the_primary() -> None:
    world = World()
    assert await world.router.use_replica() is False  # not probed yet
    await world.up()
    world.board.down = True
    assert await world.router.use_replica() is False
    await world.router.committed(700)  # kept for the board, retried in the background
    assert world.router.unpublished == 700
    world.board.down = False
    world.router.failed(ConnectionRefusedError())
    assert await world.router.use_replica() is False
    assert world.routes == [
        ("primary", "replica_down"),
        ("primary", "floor_unknown"),
        ("primary", "replica_down"),
    ]
    assert world.router.up is False
    assert world.router.lag_bytes == 0
    await world.router.close()
