"""The ``sikka-supervisor`` commands (interface section 3). ``supervisor.main`` parses the
arguments (``args``), builds what a command needs and hands it over; nothing here builds a store,
a vault or a Sikka client itself.

- ``args``      the argparse parser
- ``client``    the admin-socket client and ``finish`` (an answer to output and exit status)
- ``commands``  the commands that talk to a running supervisor
- ``local``     the commands that work without one (migrate, replay, rotate-keys, onboard)
- ``doctor``    the pre-flight checks
- ``tables``, ``render``: output for people
- ``demo``      the whole system on one machine, in one process
"""
