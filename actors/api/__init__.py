"""The admin API (interface section 4): HTTP/1.1 + JSON on the Unix socket and on TCP.

- ``http``         the one h11 connection loop (shared with ``sim``), Unix-socket listener
- ``auth``         the TCP listener's bearer-token check
- ``admin``        ``Admin``: the route table the composition root builds, and ``handle``
- ``router``       routes (matched and published), dispatch, ``ApiError``, error mapping
- ``query``        query-parameter readers
- ``schemas``      request bodies (every field's rule) and their decoding
- ``views``        response shapes (``Writeback``, ``PracticeStatus``, usage rows)
- ``access``       a practice known, run here or elsewhere, asked through its actor
- ``practices``, ``writebacks``, ``sikka_reads``, ``system``: the handlers, by topic
- ``openapi``      ``/openapi.json`` from the routes
- ``version``      the package version
"""
