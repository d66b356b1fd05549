"""How many datagrams the system has dropped for a UDP socket because its receive buffer was full.

Linux counts them per socket (the ``drops`` column of ``/proc/net/udp`` and ``/proc/net/udp6``,
found by the socket's inode); elsewhere, or if the table cannot be read, there is no count. The
server reads it now and then, so that messages lost before it could take them are said in its
log instead of vanishing silently.
"""

from __future__ import annotations

import os
import socket

TABLES = ("/proc/net/udp", "/proc/net/udp6")


def system_drops(sock: socket.socket) -> int | None:
    """The socket's drop count since it was opened, or None where the system does not say."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        for table in TABLES:
            with open(table, encoding="ascii") as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
    except (OSError, ValueError):
        return None
    return None
