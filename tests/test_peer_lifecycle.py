"""The test peers that run as processes end with the tests that start them.

Every server a test starts must be gone when its ``with`` block ends, however it was entered:
a leaked fakesnow (``with FakesnowServer(...).start() as server`` used to start a second one and
orphan the first) outlives pytest and holds a port and memory on the CI machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.snowflake_peer import FakesnowServer


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_started_fakesnow_entered_with_with_is_one_server_and_ends_with_the_block(tmp_path: Path) -> None:
    server = FakesnowServer(tmp_path).start()
    assert server.process is not None
    first = server.process.pid
    with server.start() as entered:
        assert entered.process is not None and entered.process.pid == first  # not a second server
        assert entered.answers()
    assert not alive(first)
