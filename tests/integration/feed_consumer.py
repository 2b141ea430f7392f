"""A feed consumer as the integration guide describes it, for test_feed.py: it follows
GET /api/v1/feed from the cursor it kept, and keeps each page's events with the page's cursor in
ONE appended line (written and fsynced before it asks for the next page), so that a kill at any
point loses no processed page and repeats none. Exits once it has processed ``total`` events.

    python feed_consumer.py FEED_URL TOKEN JOURNAL TOTAL
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


def last_cursor(journal: Path) -> tuple[str, int]:
    """The cursor of the last whole line, and how many events the journal holds."""
    cursor, count = "", 0
    if journal.exists():
        for line in journal.read_text().splitlines():
            if line.endswith("}"):  # a line cut by a kill was not processed
                page = json.loads(line)
                cursor, count = page["cursor"], count + len(page["events"])
    return cursor, count


def main(url: str, token: str, journal_path: str, total: int) -> None:
    journal = Path(journal_path)
    cursor, count = last_cursor(journal)
    with journal.open("a") as out:
        if journal.stat().st_size and not journal.read_text().endswith("\n"):
            out.write("\n")  # end the cut line; it stays unprocessed
        while count < total:
            query = urllib.parse.urlencode({"after": cursor, "limit": 3})
            request = urllib.request.Request(
                f"{url}?{query}", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                page = json.load(response)
            if page["items"]:
                events = [item["event_id"] for item in page["items"]]
                out.write(json.dumps({"cursor": page["next_cursor"], "events": events}) + "\n")
                out.flush()
                os.fsync(out.fileno())
                count += len(events)
            cursor = page["next_cursor"]
            time.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
