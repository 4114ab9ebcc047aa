"""Reading rosbag2 bags (mcap or sqlite3) for replay and evaluation, tolerating damage.

``inspect_bag(path)`` describes a bag (storage, topics with type and count, time span); ``read_messages`` yields its
messages as raw CDR in log-time order. Both go through the ``rosbags`` library. A bag that ``rosbags`` cannot open
because its MCAP file is truncated or has no index (a recorder killed mid-write, a bag with no ``metadata.yaml``) is
read record by record with the ``mcap`` library's stream reader instead, so whatever was written before the damage
is still usable. A read that fails part-way stops there: the messages read so far are kept and the failure is
recorded in a ``ReadReport`` (never raised), so a damaged bag is reported with what could be read.

User errors (no such bag, not a bag, a topic the bag does not have) raise ``BagError``, a ``SourceError``: the
command line prints its one-line message and exits 2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from rosbags.rosbag2 import Reader

from perception.io.frame import SourceError

log = logging.getLogger(__name__)

STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}


class BagError(SourceError):
    """A bag that cannot be used as asked; the message names the bag and what is wrong."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: its name, ``pkg/msg/Name`` type and message count."""

    name: str
    msgtype: str
    count: int


@dataclass
class BagInfo:
    """What a bag holds. ``damaged`` says what is wrong with it (empty: nothing); ``scanned`` is true when the
    bag was read record by record, without its index (then counts come from that scan)."""

    path: Path
    storage: str
    topics: dict[str, TopicInfo]
    start_ns: int = 0
    end_ns: int = 0
    damaged: str = ""
    scanned: bool = False

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def listing(self) -> str:
        """``/a (sensor_msgs/msg/Image, 50 msgs), ...`` of every topic, by name."""
        items = [f"{t.name} ({t.msgtype}, {t.count} msgs)" for t in sorted(self.topics.values(), key=lambda t: t.name)]
        return ", ".join(items) or "none"

    def require(self, topics: Iterable[str]) -> list[str]:
        """The topics asked for, in order; ``BagError`` naming the missing ones and listing what the bag has."""
        wanted = list(topics)
        missing = [t for t in wanted if t not in self.topics]
        if missing:
            raise BagError(f"{self.path}: topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the bag; "
                           f"the bag has: {self.listing()}")
        return wanted

    def topics_of_type(self, *msgtypes: str) -> list[str]:
        return sorted(t.name for t in self.topics.values() if t.msgtype in msgtypes)


@dataclass
class BagMessage:
    """One message: topic, type, log (receive) time in ns and its serialized CDR bytes."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes


@dataclass
class ReadReport:
    """What a read got: messages per topic, and the error that stopped it early (empty when it read everything)."""

    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        got = ", ".join(f"{t} {n}" for t, n in sorted(self.counts.items())) or "nothing"
        return f"read {self.total} messages ({got})" + (f"; stopped early: {self.error}" if self.error else "")


def storage_file(path: Path) -> Path | None:
    """The bag's first storage file (``.mcap`` or ``.db3``): the path itself or the first one in the folder."""
    if path.is_file():
        return path if path.suffix in STORAGE_SUFFIXES else None
    files = sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES) if path.is_dir() else []
    return files[0] if files else None


def inspect_bag(path: str | Path) -> BagInfo:
    """Describe the bag at ``path`` (a rosbag2 folder or a bare ``.mcap``); ``BagError`` if it is none."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        with Reader(path) as reader:
            topics = {name: TopicInfo(name, info.msgtype or "", int(info.msgcount))
                      for name, info in reader.topics.items()}
            storage = _storage_name(path, reader)
            return BagInfo(path, storage, topics, int(reader.start_time), int(reader.end_time))
    except Exception as exc:  # noqa: BLE001 - rosbags raises many types for a damaged bag; the scan below decides
        reason = f"{type(exc).__name__}: {exc}"
    file = storage_file(path)
    if file is None:
        raise BagError(f"{path}: cannot read as a rosbag2 bag ({reason})")
    report = ReadReport()
    start = end = 0
    types: dict[str, str] = {}
    for msg in _scan(file, None, report, types):
        start = msg.log_ns if not start else min(start, msg.log_ns)
        end = max(end, msg.log_ns)
    if not types:
        raise BagError(f"{path}: cannot read as a rosbag2 bag ({reason}); nothing could be read from {file.name}"
                       + (f" ({report.error})" if report.error else ""))
    topics = {t: TopicInfo(t, types[t], report.counts.get(t, 0)) for t in types}
    damage = "; ".join(r for r in (reason if path.is_dir() else "", report.error) if r)
    return BagInfo(path, STORAGE_SUFFIXES[file.suffix], topics, start, end, damaged=damage, scanned=True)


def _storage_name(path: Path, reader: Reader) -> str:
    file = storage_file(path)
    if file is not None:
        return STORAGE_SUFFIXES[file.suffix]
    return str(getattr(reader.metadata, "get", lambda *_: "")("storage_identifier", "")) or "unknown"


def read_messages(info: BagInfo, topics: Iterable[str] | None = None,
                  report: ReadReport | None = None) -> Iterator[BagMessage]:
    """The messages of ``topics`` (None: all) in log-time order; a failure part-way ends the iteration and is
    written to ``report.error`` (with the counts read before it)."""
    report = report if report is not None else ReadReport()
    wanted = set(info.require(topics)) if topics is not None else None
    if info.scanned:
        file = storage_file(info.path)
        assert file is not None
        yield from _scan(file, wanted, report, {})
        return
    try:
        with Reader(info.path) as reader:
            conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
            for conn, log_ns, raw in reader.messages(connections=conns):
                report.counts[conn.topic] = report.counts.get(conn.topic, 0) + 1
                yield BagMessage(conn.topic, conn.msgtype, int(log_ns), bytes(raw))
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged bag ends the read, it never crashes the caller
        report.error = f"{type(exc).__name__}: {exc}"
        log.warning("%s: %s", info.path, report.describe())


def _scan(file: Path, wanted: set[str] | None, report: ReadReport, types: dict[str, str]) -> Iterator[BagMessage]:
    """Read a storage file without ``rosbags``, as far as it goes; ``types`` gets ``{topic: msgtype}``."""
    scan = _scan_mcap if file.suffix == ".mcap" else _scan_sqlite
    try:
        yield from scan(file, wanted, report, types)
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - truncation or corruption: keep what was read, say why it stopped
        what = "the file ends part-way through a record (truncated)" if type(exc).__name__ == "EndOfFile" else (
            f"{type(exc).__name__}: {exc}")
        report.error = f"{file.name} unreadable after {report.total} messages: {what}"


def _scan_sqlite(file: Path, wanted: set[str] | None, report: ReadReport,
                 types: dict[str, str]) -> Iterator[BagMessage]:
    """Rows of a rosbag2 sqlite3 file in insertion order (no index needed), up to the first unreadable page."""
    import sqlite3  # noqa: PLC0415

    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        names = {int(i): (str(n), str(t)) for i, n, t in db.execute("SELECT id, name, type FROM topics")}
        types.update(dict(names.values()))
        for topic_id, stamp, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY rowid"):
            topic, msgtype = names.get(int(topic_id), ("", ""))
            if topic and (wanted is None or topic in wanted):
                report.counts[topic] = report.counts.get(topic, 0) + 1
                yield BagMessage(topic, msgtype, int(stamp), bytes(data))
    finally:
        db.close()


def _scan_mcap(file: Path, wanted: set[str] | None, report: ReadReport,
               types: dict[str, str]) -> Iterator[BagMessage]:
    """Messages of an MCAP file read record by record (no summary or index needed), in file order."""
    from mcap.records import Channel, Message, Schema  # noqa: PLC0415 (only for damaged or index-less bags)
    from mcap.stream_reader import StreamReader  # noqa: PLC0415

    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with file.open("rb") as stream:
        for record in StreamReader(stream, skip_magic=False).records:
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
                types[record.topic] = schemas.get(record.schema_id, "")
            elif isinstance(record, Message) and record.channel_id in channels:
                topic, msgtype = channels[record.channel_id]
                if wanted is None or topic in wanted:
                    report.counts[topic] = report.counts.get(topic, 0) + 1
                    yield BagMessage(topic, msgtype, int(record.log_time), bytes(record.data))


def has_header(msgtype: str) -> bool:
    """Whether ``msgtype``'s first field is ``std_msgs/Header header`` (known types only)."""
    from perception.io.bag_types import typestore  # noqa: PLC0415

    fields = typestore().fielddefs.get(msgtype)
    return bool(fields and fields[1] and fields[1][0][0] == "header")


def message_stamp(msg: BagMessage) -> int | None:
    """``header.stamp`` of a message that has a header, in ns (read from the CDR bytes); None otherwise."""
    from perception.io.bag_writer import header_stamp_ns  # noqa: PLC0415

    return header_stamp_ns(msg.data) if has_header(msg.msgtype) else None
