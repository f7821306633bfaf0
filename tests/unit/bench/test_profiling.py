"""Reading py-spy's collapsed stacks into cost shares."""

from __future__ import annotations

import os
from pathlib import Path

from bench.profiling import categorize, cpu_seconds, format_shares, parse_collapsed, read_collapsed

RAW = """\
main (/x/jobrelay/processor/main.py:1);encode (/x/jobrelay/messaging/codec.py:9);w (/s/fastavro/_write.py:3) 30
main (/x/jobrelay/processor/main.py:1);send (/s/aiokafka/producer/producer.py:5) 50
main (/x/jobrelay/processor/main.py:1);start_span (/s/opentelemetry/sdk/trace/__init__.py:7) 20
"""


def test_collapsed_lines_become_stack_counts_and_repeats_add_up() -> None:
    stacks = parse_collapsed(
        RAW + "main (/x/jobrelay/processor/main.py:1);send (/s/aiokafka/producer/producer.py:5) 5\n"
    )
    assert sum(stacks.values()) == 105
    assert stacks["main (/x/jobrelay/processor/main.py:1);send (/s/aiokafka/producer/producer.py:5)"] == 55


def test_garbage_lines_are_ignored() -> None:
    assert parse_collapsed("no count here\n\n 12\n") == {}


def test_a_sample_counts_for_every_category_it_touches() -> None:
    shares = categorize(parse_collapsed(RAW))
    assert shares["Avro encode/decode"] == 0.3
    assert shares["aiokafka (all)"] == 0.5
    assert shares["OpenTelemetry"] == 0.2
    assert shares["jobrelay code"] == 1.0  # inclusive: every stack starts in jobrelay
    assert shares["SQLite (aiosqlite, sqlite3, store)"] == 0.0


def test_no_samples_no_shares() -> None:
    assert categorize({}) == {}


def test_shares_are_printed_largest_first() -> None:
    text = format_shares({"small": 0.1, "big": 0.9})
    assert text.splitlines() == ["   90.0 %  big", "   10.0 %  small"]


def test_a_missing_file_reads_as_no_samples(tmp_path: Path) -> None:
    assert read_collapsed(tmp_path / "none.txt") == {}


def test_cpu_seconds_of_this_process_and_of_a_gone_one() -> None:
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(2**22 + 12345) == 0.0
