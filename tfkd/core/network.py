"""Whether a host answers, asked without hanging on a machine that has no network.

Download paths (tensorflow-datasets GLUE, keras-hub presets) probe first, so
that offline they fail within seconds with a fix instead of retrying for
minutes.

Example:
>>> from tfkd.core.network import reachable
>>> reachable("www.kaggle.com", 443)  # doctest: +SKIP
False
"""

from __future__ import annotations

import socket
import threading
from typing import List

PROBE_TIMEOUT_S = 3.0


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `host:port` opens within `timeout` seconds.

    Runs in a daemon thread because name resolution ignores socket timeouts
    and can hang far longer on a machine without DNS.

    Args:
        host: host name or address.
        port: TCP port.
        timeout: seconds to wait in all, resolution included.

    Example:
    >>> import socket
    >>> server = socket.create_server(("127.0.0.1", 0))
    >>> port = server.getsockname()[1]
    >>> reachable("127.0.0.1", port, timeout=1.0)
    True
    >>> server.close()
    >>> reachable("127.0.0.1", port, timeout=1.0)  # nothing listens there any more
    False
    """
    result: List[bool] = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
