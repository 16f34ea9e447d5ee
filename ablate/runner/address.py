"""Where ``--address`` points: its form, and whether a Ray cluster answers there, found out in
seconds before Ray is asked to connect (``ray.init`` on an address where nothing answers retries
for minutes and does not stop on SIGTERM; an address without a port is a ValueError deep in Ray).

Accepted forms (:data:`FORMS`): ``auto`` (what Ray means by it: ``RAY_ADDRESS``, else the last
``ray start`` on this node), ``HOST:PORT`` (a head node's GCS port: ``ray start --head --port``,
6379 by default) and ``ray://HOST:PORT`` (the Ray Client server, 10001 by default). HOST is a
name, an IPv4 address or a bracketed IPv6 address (``[::1]:6379``), as Ray spells them.

The probe (:func:`probe`): a TCP connection, then the HTTP/2 connection preface every gRPC client
opens with. The GCS and the Ray Client server are gRPC servers, and an HTTP/2 server's first frame
is its SETTINGS frame (RFC 9113, section 3.4), so a port that refuses, stays silent, or answers
anything else (the dashboard's HTTP, ssh, ...) is refused with one line instead of a hang. A
cluster with TLS (``RAY_USE_TLS``) speaks TLS first: there only the TCP connection is checked.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ablate.errors import UserError

FORMS = "auto, HOST:PORT (a head node's GCS port, e.g. 10.0.0.1:6379) or ray://HOST:PORT (Ray Client, port 10001)"
PROBE_S = 3.0  # per step (connect, answer): a live head answers in milliseconds, even across a cluster
# The client connection preface (RFC 9113, 3.4) followed by an empty SETTINGS frame: length 0, type 4.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
FRAME_HEADER, SETTINGS = 9, 4
NOTHING = "nothing answers there ({}); start the cluster (ray start --head) or fix the address"


@dataclass(frozen=True)
class Address:
    """A parsed ``HOST:PORT`` (``client``: given as ``ray://HOST:PORT``)."""

    host: str
    port: int
    client: bool = False


def parse_address(text: str, shown: str | None = None) -> Address:
    """``HOST:PORT`` or ``ray://HOST:PORT`` -> :class:`Address`; anything else is a UserError that
    names the accepted forms (and the address as the user gave it, ``shown``)."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep:
        scheme, rest = "", text.strip()
    parts = urlsplit(f"//{rest}")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = None
    if scheme not in ("", "ray") or not parts.hostname or not port or parts.path or parts.query or parts.username:
        raise UserError(f"--address {shown or text}: expected {FORMS}")
    return Address(parts.hostname, port, scheme == "ray")


def resolve_auto() -> str | None:
    """What ``auto`` connects to here, as Ray works it out (``RAY_ADDRESS``, else the last ``ray
    start`` on this node); None when Ray's own resolver is unavailable (its next connect says)."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # a private function of Ray: if it moves, ray.init resolves (and reports) alone
        return os.environ.get("RAY_ADDRESS") or None
    try:
        return get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise UserError(
            "--address auto: no Ray cluster on this node (RAY_ADDRESS is unset and no `ray start` ran here); "
            "start one with ray start --head, or give the head's HOST:PORT"
        ) from None


def probe(address: Address, timeout: float = PROBE_S) -> str | None:
    """Why no Ray cluster answers at ``address``, and the fix (None: a gRPC server answers there)."""
    try:
        conn = socket.create_connection((address.host, address.port), timeout=timeout)
    except socket.gaierror as e:
        return f"{address.host} is not a host name this machine knows ({e.strerror}); fix the address"
    except ConnectionRefusedError:
        return NOTHING.format("connection refused")
    except TimeoutError:
        return NOTHING.format(f"no answer within {timeout:g} s")
    except OSError as e:
        return NOTHING.format(e.strerror or e)
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None
        try:
            conn.sendall(PREFACE)
            head = _receive(conn, FRAME_HEADER)
        except OSError:  # reset, or silent past the timeout
            head = b""
    if len(head) == FRAME_HEADER and head[3] == SETTINGS:
        return None
    what = "no answer" if not head else f"an answer that is not gRPC ({head[:8]!r})"
    return (
        f"something listens there but it is not a Ray cluster ({what} within {timeout:g} s); give the head's "
        "GCS port (ray start --head --port, default 6379) or ray://HOST:10001 for Ray Client"
    )


def _receive(conn: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only when the other side closes."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_address(text: str, timeout: float = PROBE_S) -> None:
    """Refuse (UserError, one line) an ``--address`` of the wrong form or where no Ray cluster
    answers, within a few seconds; ``auto`` is resolved as Ray resolves it, then probed."""
    shown = text
    if text.strip() == "auto":
        resolved = resolve_auto()
        if resolved is None:
            return
        text, shown = resolved, f"auto (= {resolved})"
    problem = probe(parse_address(text, shown), timeout)
    if problem:
        raise UserError(f"--address {shown}: {problem}")
