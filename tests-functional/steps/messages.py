"""Test data: JSON-lines message files for `archive-node store import`."""

import base64
import json


def write_messages(path, author_secret: str, start: int, count: int, step: int, topics=("general",)) -> list[dict]:
    """Writes `count` messages `step` seconds apart; returns them as written."""
    rows = []
    for i in range(count):
        rows.append({
            "topic": topics[i % len(topics)],
            "timestamp": start + i * step,
            "payload": base64.b64encode(f"payload {i}".encode()).decode(),
            "author_key": author_secret,
        })
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
