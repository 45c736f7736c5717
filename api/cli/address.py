"""Where the API listens: its URL, whether its port can be taken, whether it answers."""

from __future__ import annotations

import errno
import http.client
import socket

from cairn.domain.errors import CairnError


def api_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Refuse, naming the port, when the API could not listen on host:port."""
    where = f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):  # SO_REUSEADDR, as uvicorn
            return
    except socket.gaierror as e:
        raise CairnError(f"cannot listen on {where}: {e.strerror}; check --host") from e
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise CairnError(f"cannot listen on {where}: {e.strerror}") from e
        raise CairnError(
            f"the API's port {where} is taken (another program, perhaps another Cairn, listens "
            "there): stop it, or choose another port with --port N or CAIRN_PORT"
        ) from e


def answers_health(host: str, port: int) -> bool:
    """True when GET /healthz on host:port answers 200 (straight, never through a proxy)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    connection = http.client.HTTPConnection(target, port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
