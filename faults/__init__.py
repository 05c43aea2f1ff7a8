"""Fault, fuzz and security suite: attacks the running system (real daphne, Redis,
PostgreSQL and exchange-simulator processes) and checks the promises hold: no signal
lost or duplicated, none deleted, nobody in who should not be. RELIABILITY.md lists
each fault, its load and the measured outcome. Client counts scale with FAULTS_SCALE.
"""
