"""`cds-service serve` whose hook handlers do no clinical work: the benchmark's throughput ceiling.

Each hook call is still read, parsed and validated (context and prefetch) by the protocol layer and
answered, with no cards: what any implementation of the rules pays before its first rule.  The
benchmark runs this file in place of the `cds-service` script, with the same arguments and settings.
Not part of the service: it replaces the declared handlers before the app is built.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import cds_service.services


def no_cards(call) -> list[dict]:
    return []


cds_service.services.SERVICES = tuple(replace(s, handler=no_cards) for s in cds_service.services.SERVICES)

if __name__ == "__main__":
    from cds_service.cli import main

    sys.exit(main(sys.argv[1:]))
