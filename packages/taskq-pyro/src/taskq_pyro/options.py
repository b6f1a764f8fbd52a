"""``broker_transport_options`` the Pyro transport reads (unknown keys are ignored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskq.transports.options import BROKER_OPTIONS, seconds_option

__all__ = ["PyroOptions"]


@dataclass(frozen=True, slots=True)
class PyroOptions:
    #: Seconds a fetched, unsettled message stays invisible before the broker hands it out
    #: again. With no sessions in Pyro, this is also how long a killed worker's messages wait.
    visibility_timeout: float = 3600.0
    #: How long one call to the broker may take (network and broker), on top of the time a
    #: blocking fetch asks the broker to wait.
    call_timeout: float = 30.0

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> PyroOptions:
        defaults = cls()
        return cls(
            visibility_timeout=seconds_option(
                options, "visibility_timeout", defaults.visibility_timeout, BROKER_OPTIONS
            ),
            call_timeout=seconds_option(
                options, "call_timeout", defaults.call_timeout, BROKER_OPTIONS
            ),
        )
