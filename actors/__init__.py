"""The supervisor's logic. General layout (trio-style: the core is pure, the shell does I/O):

Pure (import neither trio, httpx nor psycopg; take ``now``; return values):
- ``events``   the event vocabulary (msgspec tagged union) and its codec
- ``state``    ``evolve``: the fold from events to practice/writeback state
- ``outcomes`` what a Sikka call came to, as values
- ``config``   settings parsed from the environment

Shell (thin, interprets the pure decisions):
- ``sikka``    the Sikka API v4 client over one shared ``httpx.AsyncClient``
"""
