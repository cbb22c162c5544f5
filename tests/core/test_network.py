import socket
import time

from tfkd.core.network import reachable


def test_reachable_is_false_for_a_closed_port_and_true_for_a_listening_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable("127.0.0.1", server.getsockname()[1], timeout=2.0)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    start = time.perf_counter()
    assert not reachable("127.0.0.1", port, timeout=2.0)
    assert time.perf_counter() - start < 3
