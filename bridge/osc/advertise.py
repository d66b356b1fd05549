"""Zeroconf (mDNS/DNS-SD) advertising of the server: only when asked (``wavestack serve --advertise``).

Two services: ``_oscjson._tcp`` (the OSCQuery HTTP server, as the OSCQuery proposal names it) and
``_osc._udp`` (the OSC port), both under the name ``wavestack-<osc port>``. A server bound to
loopback advertises 127.0.0.1, so only programs on the same machine can use what they find.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

log = logging.getLogger("wavestack.advertise")
OSCQUERY_TYPE = "_oscjson._tcp.local."
OSC_TYPE = "_osc._udp.local."


class Advertiser:
    """Announces the OSC and OSCQuery services over Zeroconf while it lives."""
    def __init__(self, host: str, osc_port: int, http_port: int | None) -> None:
        from zeroconf import ServiceInfo, Zeroconf

        address = socket.gethostbyname(socket.gethostname()) if host in ("0.0.0.0", "") else host
        name = f"wavestack-{osc_port}"
        packed = [socket.inet_aton(socket.gethostbyname(address))]
        services = [(OSC_TYPE, osc_port)] + ([(OSCQUERY_TYPE, http_port)] if http_port is not None else [])
        self.infos: list[Any] = [
            ServiceInfo(kind, f"{name}.{kind}", addresses=packed, port=port, properties={"txtvers": "1"},
                        server=f"{name}.local.")
            for kind, port in services
        ]
        self.zeroconf = Zeroconf()
        try:
            for info in self.infos:
                self.zeroconf.register_service(info)
                log.info("advertised %s on port %d", info.name, info.port)
        except BaseException:  # Ctrl-C while probing, too: zeroconf's thread must not outlive us
            self.zeroconf.close()
            raise

    def close(self) -> None:
        """Withdraw the announcements."""
        for info in self.infos:
            self.zeroconf.unregister_service(info)
        self.zeroconf.close()
