"""``sikka-sim``: a seeded, in-process or networked simulator of the Sikka API v4 (interface.md
section 5).

Design: a pure model, ``sim/simulator.py``'s ``Simulator`` (request in, ``Response`` out; clock
and random source injected), composed of a shared state (``sim/state.py``) and endpoint groups:
``sim/keys.py`` (authentication, key grants, practice listings), ``sim/reads.py`` (the read
endpoints), ``sim/writebacks.py`` (acceptance, completion in due order, webhooks) and
``sim/control.py`` (``/_sim/*`` and faults), over ``sim/responses.py`` (responses, error bodies),
``sim/lists.py`` (the list envelope), ``sim/times.py`` and ``sim/config.py``; ``sim/data.py``
generates each practice's PMS data lazily from the seed. Two thin shells: ``sim/transport.py``
hands the model to httpx in-process (``Simulator.transport()``), ``sim/http.py`` serves it with
the shared h11 loop of ``actors/api/http.py`` (``serve``) and sends webhooks; ``sim/cli.py`` is
the console script.
"""

from sim.config import SimConfig
from sim.http import send_webhooks, serve
from sim.responses import Response
from sim.simulator import Simulator
from sim.transport import SimTransport

__all__ = ["Response", "SimConfig", "SimTransport", "Simulator", "send_webhooks", "serve"]
