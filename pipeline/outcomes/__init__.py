"""Outcome tracking: how a published signal's legs are decided by the market.

`engine` is the pure rule book (no ORM, no I/O) shared by the live tracker in the
feed process and by backtests, `records` its R figures and database columns;
`book` and `extremes` index the open signals so a trade touches only those it can
change; `tracker` runs them on the streamed trades in the feed process; `selectors`
and `services` are its database reads and writes (and the overdue-expiry job).
"""
