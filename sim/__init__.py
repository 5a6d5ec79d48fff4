"""``sikka-sim``: a seeded, in-process or networked simulator of the Sikka API v4.

Design: ``sim.core.Simulator`` is a pure model (request in, response out, clock and random
source injected); ``sim.http`` serves it over h11-on-trio (``serve``) or hands it to httpx as a
transport (``Simulator.transport()``); ``sim.data`` generates each practice's PMS data lazily
from the seed; ``sim.cli`` is the console script. The contract is interface.md section 5.
"""

from sim.core import Response, SimConfig, Simulator
from sim.http import SimTransport, send_webhooks, serve

__all__ = ["Response", "SimConfig", "SimTransport", "Simulator", "send_webhooks", "serve"]
