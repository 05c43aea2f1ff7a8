"""Exchange side of the market-data pipeline.

protocol (Binance frames and REST rows, pure) · state (connection state machine,
health, backoff, pure) · connection + manager (WebSocket streams with one registry
owner) · rest + keypool (kline REST client, API key rotation and rate limits) ·
health_store (stream health shared through Redis) · fallback (REST polling while a
stream is down) · runner (the `run_feed` process) · simulator (a loopback exchange
speaking the same protocol, for tests and demos).
"""
