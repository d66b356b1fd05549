"""`wavestack serve`: the OSC server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge.cli import options
from bridge.protocol import DAWS, port


def add_parser(sub: Any) -> None:
    """The subcommand's arguments."""
    serve = sub.add_parser(
        "serve",
        help="run the OSC server a DAW, Max/Pd patch or wavestack-ui controls",
        description="Listen for OSC over UDP (addresses under /wavestack, see the README) and render "
        "stems into the project folder. Binds loopback unless --host says otherwise. Ctrl-C or "
        "SIGTERM cancels the running render (nothing partial is written) and exits.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=9000, help="UDP port (default 9000; 0 = any free)")
    serve.add_argument("--allow", action="append", default=[], metavar="ADDRESS",
                       help="a client address or network (192.168.1.20, 192.168.1.0/24) whose OSC and "
                            "OSCQuery are answered besides this machine's; everyone else is ignored; "
                            "repeatable")
    serve.add_argument("--oscquery-port", type=port, default=None, metavar="TCP_PORT",
                       help="OSCQuery HTTP port on the same host (default: the OSC port number, TCP)")
    serve.add_argument("--no-oscquery", action="store_true", help="no OSCQuery HTTP server")
    serve.add_argument("--follow", choices=DAWS,
                       help="follow this DAW's tempo, meter and transport over OSC (see the README)")
    serve.add_argument("--daw-port", type=port, default=0, metavar="UDP_PORT",
                       help="port the DAW sends to (default: REAPER 9010, Ardour 8000, Ableton 11001)")
    serve.add_argument("--daw-send-port", type=port, default=0, metavar="UDP_PORT",
                       help="port the DAW listens on (default: REAPER 8000, Ardour 3819, AbletonOSC 11000)")
    serve.add_argument("--advertise", action="store_true",
                       help="announce the OSC and OSCQuery ports over Zeroconf/mDNS (off by default)")
    serve.add_argument("--project", help="project folder to start with (else set it over OSC)")
    serve.add_argument("--projects-root", metavar="DIR",
                       help="the only folder OSC clients may open projects and read audio files in "
                            "(default: the folder holding --project, else your home folder)")
    serve.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    options.plugin_path(serve)
    options.memory_limit(serve)


def run(args: argparse.Namespace) -> int:
    """`wavestack serve`: the OSC server until interrupted."""
    import logging
    import signal

    from bridge.osc.server import Server

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    oscquery = None if args.no_oscquery else (args.port if args.oscquery_port is None else args.oscquery_port)
    try:
        server = Server(args.host, args.port, args.project, oscquery_port=oscquery,
                        projects_root=args.projects_root, allow=tuple(args.allow))
    except OSError as exc:
        print(f"wavestack serve: cannot listen on {args.host} (OSC udp {args.port}, OSCQuery tcp "
              f"{oscquery}): {exc.strerror}; pick another --port or --oscquery-port, or --no-oscquery",
              file=sys.stderr)
        return 2
    if args.follow:
        try:
            server.handlers.follow_set({"daw": args.follow, "listen_port": args.daw_port,
                                    "send_port": args.daw_send_port}, server.reply_to(None))
        except ValueError as exc:
            print(f"wavestack serve: {exc}", file=sys.stderr)
            server.shutdown()
            return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.warning("listening on %s: other machines can reach this server", args.host)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    advertiser = None
    try:
        if args.advertise:
            from bridge.osc.advertise import Advertiser

            http_port = server.oscquery.address[1] if server.oscquery is not None else None
            try:
                advertiser = Advertiser(args.host, server.address[1], http_port)
            except Exception as exc:  # zeroconf raises several kinds when no interface can multicast
                logging.warning("cannot advertise over Zeroconf: %s (the server runs without it)", exc)
        server.serve_forever()
    except KeyboardInterrupt:
        logging.info("stopping: cancelling queued and running renders")
    finally:
        if advertiser is not None:
            advertiser.close()
        server.shutdown()
    return 0
