"""Settings of the database fault handling (interface section 2): ``SIKKA_DB_TIMEOUT`` bounds every
wait for the database, ``SIKKA_ABSENCE_GRACE`` widens the proof-of-absence window."""

from __future__ import annotations

import pytest

from actors.core.policy import CoreSettings
from actors.process import config


def test_defaults_and_values():
    defaults = config.load({})
    assert (defaults.db_timeout, defaults.absence_grace) == (5.0, 30.0)
    custom = config.load({"SIKKA_DB_TIMEOUT": "2.5", "SIKKA_ABSENCE_GRACE": "0"})
    assert (custom.db_timeout, custom.absence_grace) == (2.5, 0.0)
    assert CoreSettings.from_settings(custom).absence_grace == 0.0


@pytest.mark.parametrize(
    "env, line",
    [
        ({"SIKKA_DB_TIMEOUT": "soon"}, "SIKKA_DB_TIMEOUT='soon' is not a number"),
        ({"SIKKA_DB_TIMEOUT": "0.1"}, "SIKKA_DB_TIMEOUT='0.1' must be at least 0.5"),
        ({"SIKKA_ABSENCE_GRACE": "-1"}, "SIKKA_ABSENCE_GRACE='-1' must be at least 0"),
        ({"SIKKA_ABSENCE_GRACE": "nan"}, "SIKKA_ABSENCE_GRACE='nan' is not a number"),
        ({"SIKKA_DB_TIMEOUT": "1e300"}, f"SIKKA_DB_TIMEOUT='1e300' must be at most {config.MAX_SECONDS:.0f}"),
    ],
)
def test_bad_values_are_one_line(env, line):
    with pytest.raises(config.ConfigError) as raised:
        config.load(env)
    assert str(raised.value) == line
