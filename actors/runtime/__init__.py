"""The trio shell: it carries out what the pure core decides.

- ``actor``        one practice actor: recover, then loop over ``next_step``
- ``inbox``        the actor's mailbox (a bounded FIFO, small enough for 20,000 idle practices)
- ``commit``       the one commit path: decide, seal, append, fold, re-decide on a conflict
- ``deps``         what every actor shares (store, credentials, client, settings, clock)
- ``calls``        Sikka calls on a rate budget (take a slot, send, observe the answer)
- ``supervision``  one-for-one restarts with OTP's intensity/period rule, parking
- ``practices``    the practice supervisor: one supervised actor per practice
- ``applevel``     app-level work: the batched list poll, onboarding
- ``ownership``    practice leases across supervisors (heartbeat, rounds, guard)
- ``sikka``        the Sikka API v4 client over a shared ``httpx.AsyncClient``
"""
