"""One ASGI app served by uvicorn on a thread of its own: the test servers' shared lifecycle.

The project's test servers (the simulated LLM server, the ClickHouse HTTP interface) are real HTTP
servers on loopback; this module starts one, waits until it listens, and stops it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class ThreadedServer:
    """``uvicorn`` serving ``app`` on ``host:port`` (0: any free port) in a daemon thread."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), name=name, daemon=True)
        self.port = port

    def start(self, what: str, timeout: float = 10.0) -> int:
        """Start serving; the port it listens on. ``what`` names the server in the error."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                host, port = self._server.config.host, self._server.config.port
                raise OSError(f"{what} could not listen on {host}:{port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.port

    def stop(self, timeout: float) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
