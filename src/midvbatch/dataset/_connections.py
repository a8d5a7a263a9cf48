"""The network connections of a fetch, which a stop cuts at once.

A download thread blocked on a socket (a mirror that stalls mid-file, before its headers or
its FTP greeting, in the TCP connect) would notice Ctrl-C only when its timeout expires,
30 s later. Every socket a fetch opens is made here, known before it connects; `cut()`
shuts them all down, which wakes a connect, read or TLS handshake blocked on one in any
thread at once: it sees the end of the stream or an error.
"""

from __future__ import annotations

import errno
import ftplib
import functools
import http.client
import socket
import threading
import urllib.request
import weakref
from typing import Any

_DEFAULT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]  # "no timeout given"


class Connections:
    """The sockets of one fetch: made by `connect`, used through `opener` (http, https) and `ftp`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._cut = False
        self.opener = urllib.request.build_opener(_HTTPHandler(self), _HTTPSHandler(self))

    def track(self, sock: socket.socket) -> None:
        """Cut `sock` with the others; raise OSError (ECANCELED) if they were cut already."""
        with self._lock:
            if self._cut:
                raise OSError(errno.ECANCELED, "fetch stopped")
            self._sockets.add(sock)

    def connect(self, address: tuple[str, int], timeout: Any = _DEFAULT, source_address: Any = None) -> socket.socket:
        """Connect like socket.create_connection, the socket known before it connects."""
        host, port = address
        failure: OSError | None = None
        for family, kind, proto, _, where in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self.track(sock)
                if timeout is not _DEFAULT:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(where)
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        raise failure if failure is not None else OSError(f"no address for {host}")

    def ftp(self, timeout: float) -> ftplib.FTP:
        """Return an FTP client (not connected) whose control and data sockets are cut with the others."""
        return _FTP(self, timeout)

    def cut(self) -> None:
        """Shut down every socket, now and as soon as it is made: blocked calls on them return at once."""
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            try:  # the plain socket's shutdown: a TLS socket's own would drop its state under a reader
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:  # closed already, or never connected
                pass


class _Tracked(http.client.HTTPConnection):
    """An HTTP connection whose sockets are made by Connections."""

    def __init__(self, *args: Any, connections: Connections, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.connections = connections
        self._create_connection = connections.connect  # http.client's hook for making its socket

    def connect(self) -> None:
        super().connect()
        self.connections.track(self.sock)  # https: the TLS socket around the one made above


class _TrackedTLS(_Tracked, http.client.HTTPSConnection):
    """An HTTPS connection whose sockets are made by Connections."""


class _TrackingHandler:
    """A urllib handler (HTTP or HTTPS, the class after this one) whose connections are `connection`s made
    through Connections."""

    connection: type

    def __init__(self, connections: Connections):
        super().__init__()
        self.connections = connections

    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> http.client.HTTPResponse:
        opened = functools.partial(self.connection, connections=self.connections)
        return super().do_open(opened, req, **kwargs)  # type: ignore[misc]


class _HTTPHandler(_TrackingHandler, urllib.request.HTTPHandler):
    connection = _Tracked


class _HTTPSHandler(_TrackingHandler, urllib.request.HTTPSHandler):
    connection = _TrackedTLS


class _FTP(ftplib.FTP):
    """ftplib's client, its control and data sockets made or known by Connections."""

    def __init__(self, connections: Connections, timeout: float):
        super().__init__(timeout=timeout)
        self.connections = connections

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        """Connect and read the greeting, as ftplib does, through Connections."""
        self.host, self.port = host or self.host, port or self.port
        self.sock = self.connections.connect((self.host, self.port), self.timeout, source_address)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = super().ntransfercmd(cmd, rest)
        try:
            self.connections.track(conn)
        except OSError:
            conn.close()
            raise
        return conn, size
