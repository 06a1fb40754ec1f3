"""The toy engines of :mod:`tests.support.compliance_toys` adopting floe's compliance suite.

Copied as ``test_adoption.py`` next to the installed toys and run in a subprocess by
``tests/test_compliance_suite.py``, which compares each class's outcomes with what it expects. Two
adopter fixture sets (a local engine, a network engine) serve every toy; two classes leave out a
declaration the suite needs; the ``Weakened*`` classes run a broken engine against copies of the
suite with one check weakened (written next to this file by the calling test).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from floe.enginekit import ComputeConfig
from floe.testing import BaseComputePluginTests, BridgeTests, Endpoint

GREETING = b"TOY READY\n"


def named(name: str) -> Any:
    """An ``engine_name`` fixture answering ``name``."""

    @pytest.fixture
    def engine_name(self: object) -> str:
        return name

    return engine_name


def duckdb_error() -> BaseException:
    try:
        duckdb.connect().execute("selec 1")
    except duckdb.Error as exc:
        return exc
    raise AssertionError("DuckDB accepted invalid SQL")


@contextlib.contextmanager
def greeting_server() -> Iterator[tuple[str, int]]:
    """A toy server on 127.0.0.1 that greets every connection and closes it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(GREETING)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()
    finally:
        stop.set()
        thread.join(2)
        server.close()


class LocalFixtures:
    """What the adopter of a local engine (``toy`` and its broken copies) provides."""

    @pytest.fixture
    def engine_endpoint(self, tmp_path: Path) -> Endpoint:
        return Endpoint({"path": str(tmp_path / "endpoint.duckdb")})

    @pytest.fixture
    def local_settings(self) -> Callable[[Path], dict[str, Any]]:
        return lambda path: {"path": str(path)}

    @pytest.fixture
    def sql_executor(self) -> Callable[[list[str], ComputeConfig], None]:
        def run(statements: list[str], compute: ComputeConfig) -> None:
            conn = duckdb.connect()
            try:
                for statement in statements:
                    conn.execute(statement)
            finally:
                conn.close()

        return run

    @pytest.fixture
    def client_error(self) -> BaseException:
        return duckdb_error()


class NetworkFixtures:
    """What the adopter of a network engine (``toy_net`` and its broken copies) provides."""

    @pytest.fixture
    def greeter(self) -> Iterator[tuple[str, int]]:
        with greeting_server() as address:
            yield address

    @pytest.fixture
    def engine_endpoint(self, greeter: tuple[str, int]) -> Endpoint:
        return Endpoint({"host": greeter[0], "port": greeter[1]})

    @pytest.fixture
    def address_settings(self) -> Callable[[str, int], dict[str, Any]]:
        return lambda host, port: {"host": host, "port": port}

    @pytest.fixture
    def attaches_catalog_by_sql(self) -> bool:
        return False

    @pytest.fixture
    def client_error(self) -> BaseException:
        return duckdb_error()


class LocalAdopter(LocalFixtures, BaseComputePluginTests):
    pass


class NetworkAdopter(NetworkFixtures, BaseComputePluginTests):
    pass


class TestToy(LocalAdopter):
    engine_name = named("toy")


class TestToyNet(NetworkAdopter):
    engine_name = named("toy_net")


class TestNoType(LocalAdopter):
    engine_name = named("toy_no_type")


class TestAlwaysOk(LocalAdopter):
    engine_name = named("toy_always_ok")


class TestNetAlwaysOk(NetworkAdopter):
    engine_name = named("toy_net_always_ok")


class TestNetHung(NetworkAdopter):
    engine_name = named("toy_net_hung")


class TestLiteralSecret(NetworkAdopter):
    engine_name = named("toy_literal_secret")


class TestLeaky(NetworkAdopter):
    engine_name = named("toy_leaky")


class TestBadQuantities(LocalAdopter):
    engine_name = named("toy_bad_quantities")


class TestBadSql(LocalAdopter):
    engine_name = named("toy_bad_sql")


class TestNoAttachment(LocalAdopter):
    engine_name = named("toy_no_attachment")


class TestUnbounded(LocalAdopter):
    engine_name = named("toy_unbounded")


class TestUntranslated(LocalAdopter):
    engine_name = named("toy_untranslated")


class TestTraceback(LocalAdopter):
    engine_name = named("toy_traceback")


class TestBadSchema(LocalAdopter):
    engine_name = named("toy_bad_schema")


class TestRunNoNamespace(LocalAdopter):
    engine_name = named("toy_run_no_namespace")


class TestRunLeakyWorker(NetworkAdopter):
    engine_name = named("toy_run_leaky_worker")


class TestRunLeakyCatalog(LocalAdopter):
    engine_name = named("toy_run_leaky_catalog")


class TestRunConnectingAccess(LocalAdopter):
    engine_name = named("toy_run_connecting_access")


class TestRunBadConfigs(LocalAdopter):
    engine_name = named("toy_run_bad_configs")


class TestUndeclaredConnection(BaseComputePluginTests):
    """A compliant engine whose adopter gives neither ``address_settings`` nor ``local_settings``."""

    engine_name = named("toy")
    engine_endpoint = LocalFixtures.engine_endpoint
    sql_executor = LocalFixtures.sql_executor
    client_error = LocalFixtures.client_error


class TestUndeclaredCatalog(BaseComputePluginTests):
    """A compliant engine returning no attachment SQL, whose adopter does not say so."""

    engine_name = named("toy_net")
    greeter = NetworkFixtures.greeter
    engine_endpoint = NetworkFixtures.engine_endpoint
    address_settings = NetworkFixtures.address_settings
    client_error = NetworkFixtures.client_error


class TestToyBridge(LocalAdopter):
    engine_name = named("toy_bridge")


class BridgeAdopter(LocalFixtures, BridgeTests):
    """A broken bridge toy, checked by the bridge checks alone (every other check passes as ``toy``'s)."""


class TestBridgeLossy(BridgeAdopter):
    engine_name = named("toy_bridge_lossy")


class TestBridgeAppends(BridgeAdopter):
    engine_name = named("toy_bridge_appends")


class TestBridgeUnstaged(BridgeAdopter):
    engine_name = named("toy_bridge_unstaged")


class TestBridgeStringly(BridgeAdopter):
    engine_name = named("toy_bridge_stringly")


class TestBridgeHookless(BridgeAdopter):
    engine_name = named("toy_bridge_hookless")


class TestInPlaceBridged(BridgeAdopter):
    engine_name = named("toy_in_place_bridged")


def test_the_suite_runs_where_kubernetes_cannot_be_imported() -> None:
    """The packages floe's own tests use (not floe's, not pytest's) cannot be imported here."""
    for name in ("kubernetes", "kubernetes.client", "hypothesis", "sqlglot", "boto3", "fakesnow"):
        with pytest.raises(ModuleNotFoundError):
            __import__(name)


with contextlib.suppress(ModuleNotFoundError):  # written by the calling test when it weakens the suite
    from weakened_connection import ConnectionTests as WeakenedConnectionTests  # type: ignore[import-not-found]

    class TestWeakenedConnection(LocalFixtures, WeakenedConnectionTests):  # type: ignore[misc]
        engine_name = named("toy_always_ok")


with contextlib.suppress(ModuleNotFoundError):
    from weakened_secrets import SecretTests as WeakenedSecretTests  # type: ignore[import-not-found]

    class TestWeakenedSecrets(NetworkFixtures, WeakenedSecretTests):  # type: ignore[misc]
        engine_name = named("toy_literal_secret")


with contextlib.suppress(ModuleNotFoundError):
    from weakened_run import RunHookTests as WeakenedRunHookTests  # type: ignore[import-not-found]

    class TestWeakenedRun(LocalFixtures, WeakenedRunHookTests):  # type: ignore[misc]
        engine_name = named("toy_run_no_namespace")
