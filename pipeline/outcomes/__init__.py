"""Outcome tracking: how a published signal's legs are decided by the market.

`engine` is the pure rule book (no ORM, no I/O) shared by the live tracker in the
feed process and by backtests; `tracker` runs it on the streamed trades; `services`
holds the tracker's database reads and writes.
"""
