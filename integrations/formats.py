"""What each channel kind receives for an event: the Standard Webhooks body, a
Telegram message (HTML) and a Discord message (content + embed).

Pure functions of the stored event data (the signal's public JSON, and the
amendment for `signal.amended`), so every retry renders the same message.
"""
from __future__ import annotations

import datetime as dt
import html
import json
from decimal import Decimal, InvalidOperation
from typing import Any

_OUTCOME_LABELS = {
    "open": "Open",
    "tp_hit": "Take-profit hit",
    "sl_hit": "Stop-loss hit",
    "expired": "Expired",
    "closed": "Closed by the publisher",
    "cancelled": "Cancelled",
}
_AMENDMENT_LABELS = {"move_stop": "Stop moved", "close": "Closed", "cancel": "Cancelled"}
_DISCORD_GREEN, _DISCORD_RED, _DISCORD_GREY = 0x3FB950, 0xF85149, 0x8B949E


def webhook_body(*, event_type: str, timestamp: dt.datetime, data: dict[str, Any]) -> str:
    """The Standard Webhooks payload `{"type", "timestamp", "data"}` as compact JSON."""
    stamp = timestamp.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": stamp, "data": data}, separators=(",", ":"))


def signal_link(*, site_url: str, signal_id: int) -> str:
    return f"{site_url.rstrip('/')}/api/signals/{signal_id}/"


def _percent(portion: Any) -> str:
    try:
        value = Decimal(str(portion)) * 100
    except (InvalidOperation, ValueError):
        return str(portion)
    return f"{value.normalize():f}%"


def _targets(signal: dict[str, Any]) -> list[tuple[str, str]]:
    targets = signal.get("targets") or [{"price": signal["take_profit"], "portion": "1"}]
    return [(str(t.get("price")), _percent(t.get("portion", "1"))) for t in targets]


def _headline(event_type: str, signal: dict[str, Any]) -> str:
    direction = str(signal["direction"]).upper()
    what = {"signal.created": "New signal", "signal.outcome": "Outcome", "signal.amended": "Amendment"}[event_type]
    return f"{what} #{signal['id']}: {direction} {signal['symbol']}"


def _level_lines(signal: dict[str, Any]) -> list[str]:
    targets = ", ".join(f"{price} ({share})" for price, share in _targets(signal))
    stop = signal.get("effective_stop") or signal["stop_loss"]
    lines = [f"Entry {signal['entry_price']} · Stop {stop}", f"Targets {targets}"]
    lines.append(f"Confidence {signal['confidence']} · {signal['timeframe']} · {signal['market']} · "
                 f"source {signal['source']}")
    return lines


def _outcome_lines(signal: dict[str, Any]) -> list[str]:
    outcome = signal.get("outcome") or {}
    status = outcome.get("status", "open")
    line = f"Outcome: {_OUTCOME_LABELS.get(status, status)}"
    if outcome.get("exit_price"):
        line += f" at {outcome['exit_price']}"
    if outcome.get("r_multiple") is not None:
        line += f" ({outcome['r_multiple']} R)"
    lines = [line]
    for leg in outcome.get("legs") or []:
        if leg.get("status") and leg.get("status") != "open":
            exit_part = f" at {leg['exit_price']}" if leg.get("exit_price") else ""
            lines.append(f"Target {leg.get('target')}: {_OUTCOME_LABELS.get(leg['status'], leg['status'])}"
                         f"{exit_part}")
    return lines


def _amendment_lines(amendment: dict[str, Any]) -> list[str]:
    kind = amendment.get("type", "")
    line = _AMENDMENT_LABELS.get(kind, kind)
    if amendment.get("price"):
        line += f" to {amendment['price']}" if kind == "move_stop" else f" at {amendment['price']}"
    lines = [line]
    if amendment.get("reason"):
        lines.append(f"Reason: {amendment['reason']}")
    return lines


def message_lines(*, event_type: str, data: dict[str, Any]) -> tuple[str, list[str]]:
    """(headline, body lines) shared by the chat formats."""
    signal = data["signal"]
    if event_type == "signal.amended":
        body = _amendment_lines(data.get("event") or {}) + _level_lines(signal)
    elif event_type == "signal.outcome":
        body = _outcome_lines(signal) + _level_lines(signal)
    else:
        body = _level_lines(signal)
        if signal.get("note"):
            body.append(signal["note"])
    return _headline(event_type, signal), body


def telegram_message(*, event_type: str, data: dict[str, Any], site_url: str, chat_id: str,
                     topic_id: int | None) -> dict[str, Any]:
    """The Bot API `sendMessage` parameters (HTML parse mode, user text escaped)."""
    headline, lines = message_lines(event_type=event_type, data=data)
    link = signal_link(site_url=site_url, signal_id=data["signal"]["id"])
    text = "\n".join([f"<b>{html.escape(headline)}</b>", *(html.escape(line) for line in lines),
                      f'<a href="{html.escape(link)}">Open signal #{data["signal"]["id"]}</a>'])
    message: dict[str, Any] = {"chat_id": chat_id, "text": text[:4096], "parse_mode": "HTML",
                               "disable_web_page_preview": True}
    if topic_id is not None:
        message["message_thread_id"] = topic_id
    return message


def discord_message(*, event_type: str, data: dict[str, Any], site_url: str) -> dict[str, Any]:
    """An execute-webhook body: a one-line `content` and an embed with the details.
    Mentions are disabled: a signal's note must never ping a server."""
    signal = data["signal"]
    headline, lines = message_lines(event_type=event_type, data=data)
    if event_type == "signal.created":
        color = _DISCORD_GREEN if signal["direction"] == "long" else _DISCORD_RED
    else:
        color = _DISCORD_GREY
    embed = {
        "title": headline[:256],
        "url": signal_link(site_url=site_url, signal_id=signal["id"]),
        "description": "\n".join(lines)[:4096],
        "color": color,
        "timestamp": signal.get("created_at"),
    }
    return {"content": headline[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}
