"""A downstream consumer as its own process: records each completion it handled, one line each.

`python -m tests.integration.sdk.recorder GROUP FILE DELAY_S` with the Kafka and topic settings in
the environment. The handler "works" DELAY_S per record, then appends `job_id partition offset`
to FILE (flushed, so a kill -9 loses no line of a record it handled). Commits every 5 records.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from jobrelay.observability.logging import configure_logging
from jobrelay.sdk import Delivered, Subscriber

BATCH = 5


def main(group: str, path: Path, delay: float) -> None:
    """Run until SIGTERM, recording what was handled."""
    configure_logging("recorder", fmt="json")
    with path.open("a") as out:

        def record(item: Delivered) -> None:
            time.sleep(delay)  # the downstream work
            out.write(f"{item.job_id} {item.partition} {item.offset}\n")
            out.flush()

        Subscriber(record, group_id=group, max_records=BATCH).run()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]))
