"""Reading a child's messages in bulk: every frame that arrived, from one ``read``.

``Connection.recv_bytes`` reads one message with two system calls (its length, then its body),
after a ``poll`` to know one is there: three calls and a selector per message. The prefork
parent reads whatever a child wrote since the last time (often several replies) with one
``os.read`` and splits it into the frames ``Connection.send_bytes`` wrote: a 4-byte big-endian
signed length, or -1 followed by an 8-byte length for a message of 2 GiB or more, then the
bytes.
"""

from __future__ import annotations

import os
import select

__all__ = ["Inbox", "readable"]

#: How much one read takes at most; what is left stays readable for the next.
_READ_SIZE = 1 << 16


class Inbox:
    """The bytes read from one pipe that do not make a whole frame yet."""

    __slots__ = ("_buffer", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read(self) -> list[bytes] | None:
        """The whole frames available now (one read; call when the pipe is readable), or
        None at end of file (the other end closed: the child is gone)."""
        try:
            data = os.read(self.fd, _READ_SIZE)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return None
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        position, end = 0, len(buffer)
        while end - position >= 4:
            size = int.from_bytes(buffer[position : position + 4], "big", signed=True)
            start = position + 4
            if size == -1:
                if end - position < 12:
                    break
                size = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            if end - start < size:
                break
            frames.append(bytes(buffer[start : start + size]))
            position = start + size
        del buffer[:position]
        return frames


def readable(fd: int) -> bool:
    """Whether a read of ``fd`` would return at once (data, or end of file)."""
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)
