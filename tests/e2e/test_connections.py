"""What one client's connections may hold of a server: header, idle and body read
timeouts, and a cap on open connections (all on loopback, bounded in count and time)."""
import socket
import time
from urllib.parse import urlparse

import pytest

from docker_support import wait_for


def address(server):
    u = urlparse(server.endpoint)
    return u.hostname, u.port


def connect(server):
    s = socket.create_connection(address(server), timeout=10)
    s.setblocking(False)
    return s


def closed(s):
    """Whether the server has closed this connection (end of stream or reset)."""
    try:
        return s.recv(4096, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def ask(s, request):
    """Sends a whole request on a connection and reads its answer's status line."""
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, f"the connection closed before an answer: {got!r}"
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += s.recv(4096)
    s.setblocking(False)
    return head.split(b"\r\n")[0].decode(), rest


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: berth\r\n\r\n"


@pytest.mark.server_args("--header-read-timeout", "1", "--idle-timeout", "30")
def test_half_sent_and_silent_connections_are_closed_while_the_api_answers(server, ecs):
    # The flood, scaled down: half the connections send half a request
    # line, the others nothing; none may stay open past the header timeout, and
    # none is closed before it (each timed from its own opening: on a busy
    # machine opening 300 takes a while).
    conns = []
    for i in range(300):
        s = connect(server)
        if i % 2 == 0:
            s.send(b"POST / HTT")
        conns.append((s, time.monotonic()))
    asked = time.monotonic()
    assert ecs.list_clusters()["clusterArns"] == []
    answered = time.monotonic() - asked
    assert answered < 1, f"the API took {answered:.2f}s under the flood"
    closed_at = {}

    def all_closed():
        now = time.monotonic()
        for i, (s, _) in enumerate(conns):
            if i not in closed_at and closed(s):
                closed_at[i] = now
        return len(closed_at) == len(conns)
    wait_for("every stalled connection to be closed", all_closed, timeout=15, interval=0.05)
    early = [(i, closed_at[i] - opened) for i, (_, opened) in enumerate(conns) if closed_at[i] - opened < 0.9]
    assert not early, f"closed before the 1s header timeout (index, seconds open): {early[:5]}"
    for s, _ in conns:
        s.close()


@pytest.mark.server_args("--header-read-timeout", "1", "--idle-timeout", "3")
def test_an_idle_keep_alive_connection_outlives_the_header_timeout_but_not_the_idle_one(server):
    s = connect(server)
    assert ask(s, HEALTH) == ("HTTP/1.1 200 OK", b"ok")
    # Idle for longer than the header timeout: still open, and it serves the next request.
    time.sleep(1.5)
    assert not closed(s)
    assert ask(s, HEALTH) == ("HTTP/1.1 200 OK", b"ok")
    answered = time.monotonic()
    wait_for("the idle connection to be closed", lambda: closed(s), timeout=15)
    idle = time.monotonic() - answered
    assert idle >= 2.9, f"closed after {idle:.2f}s idle, before the 3s idle timeout"
    s.close()


@pytest.mark.server_args("--body-read-timeout", "1")
def test_a_body_that_stops_coming_is_answered_408(server):
    s = connect(server)
    s.setblocking(True)
    s.sendall(b"POST / HTTP/1.1\r\nHost: berth\r\nContent-Type: application/x-amz-json-1.1\r\n"
              b"X-Amz-Target: AmazonEC2ContainerServiceV20141113.ListClusters\r\n"
              b"Content-Length: 100\r\n\r\n{\"maxRes")
    sent = time.monotonic()
    s.settimeout(15)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, f"closed without an answer: {got!r}"
        got += chunk
    waited = time.monotonic() - sent
    assert got.startswith(b"HTTP/1.1 408"), got
    assert b"RequestTimeoutException" in got
    assert 0.9 <= waited < 10, waited
    s.close()


@pytest.mark.server_args("--max-connections", "20", "--header-read-timeout", "60")
def test_connections_beyond_the_cap_are_closed_with_a_log_line_until_some_leave(server):
    held = [connect(server) for _ in range(20)]
    # The server has counted all twenty once one of them is served.
    assert ask(held[0], HEALTH)[0] == "HTTP/1.1 200 OK"
    extra = connect(server)
    wait_for("the connection over the cap to be closed", lambda: closed(extra), timeout=10)
    assert not any(closed(s) for s in held)
    log = (server.data_dir.parent / "server.log").read_text(errors="replace")
    assert "refusing connections" in log and "--max-connections" in log
    for s in held[10:]:
        s.close()

    def served():
        s = connect(server)
        try:
            return ask(s, HEALTH)[0] == "HTTP/1.1 200 OK"
        except (AssertionError, OSError):
            return False
        finally:
            s.close()
    wait_for("a new connection to be served once others closed", served, timeout=10)
    for s in held[:10] + [extra]:
        s.close()
