"""The orderdesk domain: catalog, inventory and orders as plain Python aggregates.

No framework, driver or serialisation library is imported here; aggregates check their
invariants, raise :mod:`errors`, change state and collect the contract events from
:mod:`shared_contracts.events` in ``self.events`` for the unit of work to append.

Every aggregate has ``version`` (the stream version of its last event). Each recorded event
adds 1, so pending event ``i`` (0-based) of ``agg.events`` has stream version
``agg.version - len(agg.events) + i + 1``.
"""
