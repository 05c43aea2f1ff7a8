"""Prometheus metrics shared by web, worker and feed processes (served at /metrics)."""
from prometheus_client import Counter, Gauge, Histogram

SIGNALS_CREATED = Counter("signals_created_total", "Signals created", ["source"])
BROADCASTS = Counter("signals_broadcasts_total", "Doorbells published", ["kind"])
BROADCAST_FAILURES = Counter("signals_broadcast_failures_total", "Doorbells that could not reach Redis")
WS_CONNECTIONS = Gauge("signals_ws_connections", "Open WebSocket connections in this process")
# By state: "replaying" (catching up from the database) or "live" (in-order doorbells).
WS_CONNECTIONS_BY_STATE = Gauge("signals_ws_connections_by_state", "Open WebSocket connections by state", ["state"])
WS_FRAMES_REPLAYED = Counter("signals_ws_frames_replayed_total", "Frames sent by replays (resume from after_id)")
WS_GAP_FILLS = Counter("signals_ws_gap_fills_total", "Database fills triggered by a missed doorbell")
WS_REJECTED = Counter("signals_ws_rejected_total", "WebSocket connections refused or closed", ["reason"])
SSE_CONNECTIONS = Gauge("signals_sse_connections", "Open Server-Sent Events streams in this process")
API_CREATE_LATENCY = Histogram("signals_api_create_seconds", "POST /api/signals/ latency")
FANOUT_SECONDS = Histogram(
    "signals_fanout_seconds", "Time for one web process to hand one doorbell to all its clients",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FANOUT_FRAMES = Counter("signals_fanout_frames_total", "Frames written by the fan-out, by path", ["path"])
FANOUT_WRITE_FAILURES = Counter(
    "signals_fanout_write_failures_total", "Fan-out writes that failed (the client was closed to resume)"
)
