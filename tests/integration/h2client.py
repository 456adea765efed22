"""h2client.py: a small HTTP/2 cleartext (prior knowledge) client over Debian's python3-h2, for
the integration tests: whole requests, requests left half-sent, streams reset, and clients that
vanish with RST instead of FIN."""
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events


def linger_close(s):
    """Close with RST instead of FIN: the harshest way for a client to vanish."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def connect(port, timeout=10):
    """A socket and an h2 connection whose preface is queued (sent with the first flush)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    return s, c


def headers(method, path, port, extra=()):
    return [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", "127.0.0.1:%d" % port)] + list(extra)


def send_body(c, sid, data, end_stream):
    """DATA frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE)."""
    for i in range(0, len(data), 16384):
        last = i + 16384 >= len(data)
        c.send_data(sid, data[i:i + 16384], end_stream=end_stream and last)


def send_request(c, hdrs, body=b""):
    """Queues one whole request; returns its stream id."""
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, hdrs, end_stream=not body)
    if body:
        send_body(c, sid, body, True)
    return sid


def read_responses(s, c, sids, timeout=10.0):
    """Reads until every stream in sids has ended (or was reset by the server, status None).
    Returns {sid: (status, headers, body)}; a second response on a stream fails the h2 state
    machine, so it would raise here."""
    out = {sid: [None, {}, b""] for sid in sids}
    left = set(sids)
    deadline = time.monotonic() + timeout
    while left:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in c.receive_data(chunk):
            sid = getattr(ev, "stream_id", None)
            if isinstance(ev, h2.events.ResponseReceived):
                h = {k.decode(): v.decode() for k, v in ev.headers}
                out[sid][0], out[sid][1] = int(h[":status"]), h
            elif isinstance(ev, h2.events.DataReceived):
                out[sid][2] += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                left.discard(sid)
        s.sendall(c.data_to_send())
    return {sid: tuple(v) for sid, v in out.items()}


def request(port, method, path, body=b"", extra=(), keep=False):
    """One HTTP/2 request on a connection of its own; returns (status, headers, body), and with
    keep=True the connection's socket, still open, as a fourth item."""
    s, c = connect(port)
    sid = send_request(c, headers(method, path, port, extra), body)
    s.sendall(c.data_to_send())
    try:
        got = read_responses(s, c, [sid])[sid]
    except BaseException:
        s.close()
        raise
    if keep:
        return got + (s,)
    s.close()
    return got
