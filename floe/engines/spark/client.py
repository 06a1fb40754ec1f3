"""A HiveServer2 (TCLIService) client with just the calls a connection check needs.

It speaks the protocol with the ``thrift`` package: TCLIService calls encoded by TBinaryProtocol,
over a SASL PLAIN framed socket (thrift_sasl's wire format), a raw socket (NOSASL) or THttpClient
(``http``), every wait bounded by the check's deadline.

**Why not a client library.** Tried here (December 2026) against the tests' Spark 3.5 Thrift
server (``tests/support/spark_peer.py``, LDAP through SASL PLAIN), each with thrift 0.24, the
version databricks-sql-connector needs in the same environment:

- PyHive 0.7.0 with ``hive_pure_sasl`` (pure-sasl 0.6.2, thrift-sasl 0.4.3; no compiled SASL
  library) installs and runs ``SELECT 1`` (dbt-spark's own ``thrift`` method uses it). It is not
  used because its README says "Project is currently unsupported", PyHive 0.7.0 and pure-sasl
  0.6.2 are published as source only (floe's dependencies are wheels), and it reports every
  failure as a ``TTransportException`` whose text would have to be parsed (a rejected password is
  ``Bad status: 3 (b'Error validating the login')``, a NOSASL client at a SASL server ``TSocket
  read 0 bytes``), its ``Connection`` opening the session inside its constructor.
- impyla 0.24.0 (maintained, a wheel, thrift>=0.23, pure-Python SASL) does not fit: its cursor
  asks for Impala's ``GetLog`` after ``ExecuteStatement``, which the Spark Thrift server does not
  know (``Invalid method name: 'GetLog'``), so ``SELECT 1`` fails; and a rejected password comes
  out as ``Could not connect to any of [...]``, the server's reason lost.

So the check keeps these few calls (OpenSession, GetInfo, ExecuteStatement, GetOperationStatus,
CancelOperation, CloseSession) and the SASL PLAIN start, written against the protocol: about 250
lines, each failure its own exception class, each wait bounded by the time left.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

_CLIENT_PROTOCOL = 7  # HIVE_CLI_SERVICE_PROTOCOL_V8, as PyHive sends
_INFO_DBMS_NAME, _INFO_DBMS_VER = 17, 18
_SASL_START, _SASL_OK, _SASL_BAD, _SASL_ERROR, _SASL_COMPLETE = 1, 2, 3, 4, 5
_STATUS_ERROR, _STATUS_INVALID_HANDLE = 3, 4
_OPERATION_FINISHED, _OPERATION_RUNNING = 2, (0, 1, 7)  # FINISHED; INITIALIZED, RUNNING, PENDING
_OPERATION_STATES = {3: "CANCELED", 4: "CLOSED", 5: "ERROR", 6: "UNKNOWN", 8: "TIMEDOUT"}
_MAX_FRAME = 64 * 2**20


class _WireError(Exception):
    """The peer does not speak the expected protocol, or refused what was sent."""


class _AuthError(Exception):
    """The server rejected the credentials."""


class _ServerError(Exception):
    """A Thrift call returned an error status."""


class _HttpStatus(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} {reason}")
        self.code = code


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the validation's time is up")
    return left


def _thrift_types() -> Any:
    from thrift.Thrift import TType

    return TType


def _write_struct(proto: Any, fields: list[tuple[int, int, Any]]) -> None:
    ttype = _thrift_types()
    proto.writeStructBegin("args")
    for field_id, kind, value in fields:
        if value is None:
            continue
        proto.writeFieldBegin("f", kind, field_id)
        if kind == ttype.I32:
            proto.writeI32(value)
        elif kind == ttype.BOOL:
            proto.writeBool(value)
        elif kind == ttype.STRING:
            proto.writeBinary(value if isinstance(value, bytes) else value.encode())
        elif kind == ttype.STRUCT:
            _write_struct(proto, value)
        elif kind == ttype.MAP:  # map<string, string>
            proto.writeMapBegin(ttype.STRING, ttype.STRING, len(value))
            for key, item in value.items():
                proto.writeString(key)
                proto.writeString(item)
            proto.writeMapEnd()
        else:  # pragma: no cover - only the kinds above are sent
            raise TypeError(kind)
        proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()


def _read_value(proto: Any, kind: int) -> Any:
    ttype = _thrift_types()
    readers: dict[int, Callable[[], Any]] = {
        ttype.STRUCT: lambda: _read_struct(proto),
        ttype.I32: proto.readI32,
        ttype.I64: proto.readI64,
        ttype.I16: proto.readI16,
        ttype.BYTE: proto.readByte,
        ttype.BOOL: proto.readBool,
        ttype.DOUBLE: proto.readDouble,
        ttype.STRING: proto.readBinary,
    }
    if kind in readers:
        return readers[kind]()
    if kind in (ttype.LIST, ttype.SET):
        item, size = proto.readListBegin() if kind == ttype.LIST else proto.readSetBegin()
        return [_read_value(proto, item) for _ in range(size)]
    if kind == ttype.MAP:
        key, value, size = proto.readMapBegin()
        return {_read_value(proto, key): _read_value(proto, value) for _ in range(size)}
    proto.skip(kind)
    return None


def _read_struct(proto: Any) -> dict[int, Any]:
    ttype = _thrift_types()
    fields: dict[int, Any] = {}
    proto.readStructBegin()
    while True:
        _, kind, field_id = proto.readFieldBegin()
        if kind == ttype.STOP:
            break
        fields[field_id] = _read_value(proto, kind)
        proto.readFieldEnd()
    proto.readStructEnd()
    return fields


def _handle(identifier: Mapping[int, Any]) -> list[tuple[int, int, Any]]:
    ttype = _thrift_types()
    return [(1, ttype.STRING, identifier.get(1, b"")), (2, ttype.STRING, identifier.get(2, b""))]


class _SocketTransport:
    """A thrift transport over a socket, SASL-framed or raw; every wait bounded by the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, framed: bool) -> None:
        self.sock, self.deadline, self.framed = sock, deadline, framed
        self._rbuf = b""
        self._wbuf = bytearray()

    def recv_exact(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            self.sock.settimeout(_remaining(self.deadline))
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(_remaining(self.deadline))
        self.sock.sendall(data)

    # the TTransportBase interface TBinaryProtocol uses
    def readAll(self, size: int) -> bytes:  # thrift's name
        if not self.framed:
            return self.recv_exact(size)
        while len(self._rbuf) < size:
            (length,) = struct.unpack(">I", self.recv_exact(4))
            if length > _MAX_FRAME:
                raise _WireError(f"a frame of {length} bytes is not a Thrift reply")
            self._rbuf += self.recv_exact(length)
        data, self._rbuf = self._rbuf[:size], self._rbuf[size:]
        return data

    def write(self, data: bytes) -> None:
        self._wbuf += data

    def flush(self) -> None:
        data = bytes(self._wbuf)
        self._wbuf = bytearray()
        self.send(struct.pack(">I", len(data)) + data if self.framed else data)


class _HiveClient:
    """The few TCLIService calls a connection check needs."""

    def __init__(self, transport: Any, after_flush: Callable[[], None] = lambda: None) -> None:
        from thrift.protocol.TBinaryProtocol import TBinaryProtocol

        self.transport = transport
        self.proto = TBinaryProtocol(transport)
        self.after_flush = after_flush
        self.seq = 0

    def call(self, name: str, request: list[tuple[int, int, Any]]) -> dict[int, Any]:
        from thrift.Thrift import TMessageType

        ttype = _thrift_types()
        self.seq += 1
        self.proto.writeMessageBegin(name, TMessageType.CALL, self.seq)
        _write_struct(self.proto, [(1, ttype.STRUCT, request)])
        self.proto.writeMessageEnd()
        self.transport.flush()
        self.after_flush()
        try:
            _, kind, _ = self.proto.readMessageBegin()
            body = _read_struct(self.proto)
            self.proto.readMessageEnd()
        except (EOFError, TimeoutError, OSError, _WireError):
            raise
        except Exception as exc:  # noqa: BLE001 - a TProtocolException on bytes that are not Thrift
            raise _WireError(f"the reply to {name} is not a Thrift message ({exc})") from None
        if kind == TMessageType.EXCEPTION:
            raise _ServerError(f"{name}: {body.get(1, b'').decode(errors='replace')}")
        response = body.get(0)
        if not isinstance(response, dict):
            raise _WireError(f"the reply to {name} holds no result")
        status = response.get(1, {})
        if status.get(1) in (_STATUS_ERROR, _STATUS_INVALID_HANDLE):
            message = status.get(5) or b""
            infos = status.get(2) or []
            text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
            if not text and infos:
                text = infos[0].decode(errors="replace")
            raise _ServerError(text or f"{name} failed with status {status.get(1)}")
        return response


def _hive_session(
    client: _HiveClient,
    user: str,
    password: str | None,
    configuration: dict[str, str],
    deadline: float,
    details: dict[str, Any],
    progress: dict[str, Any],
) -> str:
    """OpenSession, GetInfo, SELECT 1 (while time allows), CloseSession; returns a summary."""
    ttype = _thrift_types()
    progress["stage"] = "opening a Thrift session (OpenSession)"
    opened = client.call(
        "OpenSession",
        [
            (1, ttype.I32, _CLIENT_PROTOCOL),
            (2, ttype.STRING, user),
            (3, ttype.STRING, password),
            (4, ttype.MAP, configuration),
        ],
    )
    details["protocol_version"] = opened.get(2)
    session = [(1, ttype.STRUCT, _handle(opened.get(3, {}).get(1, {})))]
    try:
        finished = _hive_select_1(client, session, deadline, details, progress)
    except TimeoutError:  # the login worked: a slow first query is no reason to fail
        finished = False
        details.setdefault("server", "unknown")
        details["select_1"] = "still running at the deadline"
    progress["stage"] = "closing the Thrift session"
    if deadline - time.monotonic() > 0.2:
        _quietly(lambda: client.call("CloseSession", [(1, ttype.STRUCT, session)]))
    summary = f"{details['server']} opened a session"
    if finished:
        return summary + " and ran SELECT 1"
    return summary + "; SELECT 1 had not finished at the deadline (a cold Spark needs seconds)"


def _hive_select_1(
    client: _HiveClient,
    session: list[tuple[int, int, Any]],
    deadline: float,
    details: dict[str, Any],
    progress: dict[str, Any],
) -> bool:
    """GetInfo (server name and version), then SELECT 1 polled until done or the deadline."""
    ttype = _thrift_types()
    progress["stage"] = "asking the server's name and version (GetInfo)"
    names = []
    for info in (_INFO_DBMS_NAME, _INFO_DBMS_VER):
        value = client.call("GetInfo", [(1, ttype.STRUCT, session), (2, ttype.I32, info)]).get(2, {})
        names.append(value.get(1, b"").decode(errors="replace") if isinstance(value, dict) else "")
    details["server"] = " ".join(n for n in names if n) or "unknown"
    progress["stage"] = "running SELECT 1"
    executed = client.call(
        "ExecuteStatement",
        [
            (1, ttype.STRUCT, session),
            (2, ttype.STRING, "SELECT 1"),
            (4, ttype.BOOL, True),
        ],
    )
    op = executed.get(2, {})
    operation = [
        (1, ttype.STRUCT, _handle(op.get(1, {}))),
        (2, ttype.I32, op.get(2, 0)),
        (3, ttype.BOOL, bool(op.get(3, True))),
    ]
    pause = 0.05
    while True:
        state = client.call("GetOperationStatus", [(1, ttype.STRUCT, operation)])
        code = state.get(2)
        if code == _OPERATION_FINISHED:
            details["select_1"] = "finished"
            return True
        if code not in _OPERATION_RUNNING:
            error = state.get(5, b"")
            text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
            raise _ServerError(f"SELECT 1 ended {_OPERATION_STATES.get(int(code or 0), code)}: {text}")
        if deadline - time.monotonic() < pause + 0.3:
            details["select_1"] = "still running at the deadline"
            _quietly(lambda: client.call("CancelOperation", [(1, ttype.STRUCT, operation)]))
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - clean-up of a check that has its answer already
        pass


def _sasl_plain(transport: _SocketTransport, user: str, password: str) -> None:
    """thrift_sasl's PLAIN negotiation: START mechanism, OK credentials, then COMPLETE or BAD."""
    mechanism = b"PLAIN"
    credentials = b"\0" + user.encode() + b"\0" + password.encode()
    transport.send(
        struct.pack(">BI", _SASL_START, len(mechanism))
        + mechanism
        + struct.pack(">BI", _SASL_OK, len(credentials))
        + credentials
    )
    header = transport.recv_exact(5)
    status, length = struct.unpack(">BI", header)
    if status not in (_SASL_OK, _SASL_BAD, _SASL_ERROR, _SASL_COMPLETE) or length > _MAX_FRAME:
        raise _WireError(
            "the reply to the SASL handshake is not SASL (is this the Thrift port, "
            "and does the server use SASL? try auth: NOSASL)"
        )
    payload = transport.recv_exact(length).decode(errors="replace")
    if status in (_SASL_BAD, _SASL_ERROR):
        raise _AuthError(payload or "the server rejected the credentials")
    if status != _SASL_COMPLETE:
        raise _WireError(f"the server asked for another SASL step ({payload!r}); is auth right?")
