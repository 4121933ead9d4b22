"""Reading camera frames from ROS 2 bags (sqlite3 and mcap) with `rosbags`, without ROS installed.

A bag is a rosbag2 folder (metadata.yaml beside .db3 or .mcap files) or a single .db3 / .mcap file. A folder
whose metadata.yaml is missing (a recording that was killed) is read from its single storage file. An mcap file
that breaks off (a killed recording: no summary or footer, its last record cut short) is read up to the last
complete record with mcap's stream reader, and `recovered_messages` says how many messages were recovered.
Frames come in the bag's log-time order. Each frame's stamp is its header stamp, or its log time (the time the
recorder received it) when the header stamp is zero. Image decoding follows the node's rules
(openpose_ros.messages.conversions, which needs no rclpy): sensor_msgs/Image in bgr8, rgb8, bgra8, rgba8, mono8,
mono16 (and 8UC1/8UC3/8UC4/16UC1), rows padded to `step`; sensor_msgs/CompressedImage in any format
OpenCV decodes (JPEG, PNG). A frame that cannot be decoded is rejected with the reason; it never stops a run.
"""
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.messages.typestore import COMPRESSED_IMAGE, IMAGE, IMAGE_TYPES, stamp_ns

STORAGES = ('sqlite3', 'mcap')
_SUFFIX_STORAGE = {'.db3': 'sqlite3', '.mcap': 'mcap'}


class BagError(Exception):
    """A bag that cannot be used (missing, corrupt, truncated, without images, ambiguous); the message says
    what is wrong and, where it can, what to do."""


@dataclass(frozen=True)
class RecoveredConnection:
    """A channel of a truncated mcap file, with the number of its messages that could be read."""
    id: int
    topic: str
    msgtype: str
    msgcount: int


class TruncatedMcap:
    """The readable part of an mcap file that breaks off: its channels and the messages before the first
    incomplete record (in file order), with the interface of rosbags' Reader that BagInput uses."""

    def __init__(self, path):
        self.path = Path(path)
        self.end_offset = None      # the byte at which reading stopped
        self.stop_reason = None
        counts, times, channels = {}, [], {}
        for channel, log_time, _ in self._scan(channels):
            counts[channel.id] = counts.get(channel.id, 0) + 1
            times.append(log_time)
        self.message_count = len(times)
        self.start_time = min(times) if times else 0
        self.end_time = max(times) + 1 if times else 0
        self.connections = [RecoveredConnection(c.id, c.topic, c.msgtype, counts.get(c.id, 0))
                            for c in channels.values()]
        self.is_open = True

    def _scan(self, channels):
        """(channel, log time, data) of every complete message; fills `channels` {id: RecoveredConnection}."""
        from mcap.records import Channel, DataEnd, Message, Schema
        from mcap.stream_reader import StreamReader
        size = self.path.stat().st_size
        schemas = {}
        with open(self.path, 'rb') as stream:
            records = StreamReader(stream, record_size_limit=size).records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as error:  # a record cut short or garbled: the end of what can be read
                    self.stop_reason = f'{type(error).__name__} {error}'.strip()
                    break
                self.end_offset = stream.tell()
                if isinstance(record, Schema):
                    schemas[record.id] = record.name
                elif isinstance(record, Channel):
                    channels.setdefault(record.id, RecoveredConnection(
                        record.id, record.topic, schemas.get(record.schema_id, ''), 0))
                elif isinstance(record, Message) and record.channel_id in channels:
                    yield channels[record.channel_id], record.log_time, record.data
                elif isinstance(record, DataEnd):
                    break

    def messages(self, connections=()):
        wanted = {connection.id for connection in connections}
        for channel, log_time, data in self._scan({}):
            if channel.id in wanted:
                yield channel, log_time, data

    def close(self):
        self.is_open = False


@dataclass(frozen=True)
class ImageTopic:
    name: str
    msgtype: str
    count: int


@dataclass
class Frame:
    """One message of the image topic.

    index: position in the topic from the bag's first message (0-based; --start/--end do not change it);
    log_time_ns: when the recorder received it; stamp_ns: the header stamp, or log_time_ns when that is zero
    (stamp_source 'header' or 'log'); header: the message's std_msgs/Header (None when the message could
    not be deserialised); msg: the deserialised message; error: why it cannot be used, else None.
    """
    index: int
    log_time_ns: int
    stamp_ns: int
    stamp_source: str
    msgtype: str
    header: object = None
    msg: object = None
    error: str = None


def _storage_file(folder):
    files = sorted(p for p in folder.iterdir() if p.suffix in _SUFFIX_STORAGE)
    if len(files) == 1:
        return files[0]
    if not files:
        raise BagError(f'{folder} is not a ROS 2 bag: it holds neither metadata.yaml nor a .db3 or .mcap file')
    raise BagError(f'{folder} has no metadata.yaml and several storage files ({", ".join(p.name for p in files)}); '
                   f'pass one of them as the bag')


class BagInput:
    """An opened input bag: its image topics and their frames. Use as a context manager, or close()."""

    def __init__(self, path, store):
        from rosbags.rosbag2 import Reader
        self.path = Path(path)
        self.store = store
        self.warnings = []
        self.recovered_messages = None
        if not self.path.exists():
            raise BagError(f'no bag at {self.path}')
        target = self.path
        if self.path.is_dir() and not (self.path / 'metadata.yaml').is_file():
            target = _storage_file(self.path)
            self.warnings.append(f'{self.path} has no metadata.yaml (an interrupted recording?); reading '
                                 f'{target.name} directly')
        if target.is_file() and target.suffix not in _SUFFIX_STORAGE:
            raise BagError(f'{target} is not a ROS 2 bag: expected a bag folder, a .db3 or an .mcap file')
        try:
            self.reader = Reader(target)
            self.reader.open()
        except Exception as error:  # rosbags, sqlite/apsw, mcap parsing: all mean the same to the user
            self.reader = self._recover(target, error)
        self.storage = self._storage_of(target)

    def _recover(self, target, error):
        """The readable part of a truncated mcap file (TruncatedMcap), else BagError saying why `target` could
        not be opened."""
        refusal = (f'cannot open {self.path} as a ROS 2 bag (corrupt, truncated or not a bag): '
                   f'{type(error).__name__}: {error}')
        mcaps = sorted(target.glob('*.mcap')) if target.is_dir() else [target]
        if len(mcaps) != 1 or mcaps[0].suffix != '.mcap':
            raise BagError(refusal) from error
        try:
            recovered = TruncatedMcap(mcaps[0])
        except ImportError:
            raise BagError(f'{refusal}; to read what a truncated mcap file holds, install mcap '
                           f'(pip install mcap)') from error
        except Exception as failed:  # not even the header: nothing to recover
            raise BagError(f'{refusal}; nothing could be recovered ({type(failed).__name__})') from error
        if not recovered.message_count:
            raise BagError(f'{refusal}; no complete message could be recovered from it') from error
        self.recovered_messages = recovered.message_count
        self.warnings.append(f'recovered {recovered.message_count} messages from a truncated mcap file '
                             f'({mcaps[0].name}: {error}; reading stopped at byte {recovered.end_offset} of '
                             f'{mcaps[0].stat().st_size}: {recovered.stop_reason or "no summary"}); '
                             f'the messages after that are lost')
        return recovered

    def _storage_of(self, target):
        if target.is_file():
            return _SUFFIX_STORAGE[target.suffix]
        names = {p.suffix for p in target.iterdir()}
        return 'mcap' if '.mcap' in names or '.mcap.zstd' in names else 'sqlite3'

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.reader.is_open:
            self.reader.close()

    # --- metadata ------------------------------------------------------------------------------------------
    @property
    def start_ns(self):
        return int(self.reader.start_time) if self.reader.message_count else 0

    @property
    def end_ns(self):
        return int(self.reader.end_time) if self.reader.message_count else 0

    @property
    def duration_s(self):
        return max(0, self.end_ns - self.start_ns) / 1e9

    def topics(self):
        """{topic: [message types]} of every connection in the bag."""
        topics = {}
        for connection in self.reader.connections:
            topics.setdefault(connection.topic, set()).add(connection.msgtype)
        return {topic: sorted(types) for topic, types in sorted(topics.items())}

    def image_topics(self):
        """The Image and CompressedImage topics, with their message counts."""
        counts = {}
        for connection in self.reader.connections:
            if connection.msgtype in IMAGE_TYPES:
                key = (connection.topic, connection.msgtype)
                counts[key] = counts.get(key, 0) + int(connection.msgcount)
        return [ImageTopic(topic, msgtype, count) for (topic, msgtype), count in sorted(counts.items())]

    def select_topic(self, topic=None):
        """The image topic to read: `topic` when given (it must hold images), else the bag's only one."""
        images = self.image_topics()
        listing = ', '.join(f'{t.name} ({t.msgtype.rsplit("/", 1)[-1]}, {t.count} messages)' for t in images)
        if topic is not None:
            matches = [t for t in images if t.name == topic]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BagError(f'topic {topic} holds both Image and CompressedImage messages; not supported')
            present = self.topics()
            if topic in present:
                raise BagError(f'topic {topic} holds {", ".join(present[topic])}, not {IMAGE} or '
                               f'{COMPRESSED_IMAGE}' + (f'; image topics: {listing}' if images else ''))
            raise BagError(f'no topic {topic} in {self.path}; '
                           + (f'image topics: {listing}' if images else self._no_images()))
        if not images:
            raise BagError(self._no_images())
        if len(images) > 1:
            raise BagError(f'{self.path} has several image topics: {listing}; choose one with --topic')
        return images[0]

    def _no_images(self):
        topics = self.topics()
        found = ', '.join(f'{name} ({", ".join(types)})' for name, types in topics.items()) or 'none'
        return (f'{self.path} holds no image topic ({IMAGE} or {COMPRESSED_IMAGE}); its topics: {found}')

    # --- frames --------------------------------------------------------------------------------------------
    def frames(self, topic, start_ns=None, end_ns=None):
        """Frames of `topic` (an ImageTopic) whose log time is in [start_ns, end_ns) (absolute nanoseconds,
        None: unbounded), deserialised but not decoded. A bag that breaks off mid-way raises BagError after the
        frames before the break."""
        connections = [c for c in self.reader.connections if c.topic == topic.name and c.msgtype == topic.msgtype]
        messages = iter(self.reader.messages(connections))
        index = -1
        while True:
            try:
                _, log_time, raw = next(messages)
            except StopIteration:
                return
            except Exception as error:
                raise BagError(f'{self.path} is corrupt or truncated: reading stopped after {index + 1} messages '
                               f'of {topic.name} ({type(error).__name__}: {error})') from error
            index += 1
            if start_ns is not None and log_time < start_ns:
                continue
            if end_ns is not None and log_time >= end_ns:
                return
            yield self._frame(index, int(log_time), raw, topic.msgtype)

    def _frame(self, index, log_time, raw, msgtype):
        try:
            msg = self.store.deserialize_cdr(raw, msgtype)
            header = msg.header
            stamp = stamp_ns(header)
        except Exception as error:
            return Frame(index, log_time, log_time, 'log', msgtype,
                         error=f'message cannot be deserialised as {msgtype} ({type(error).__name__})')
        if stamp == 0:
            return Frame(index, log_time, log_time, 'log', msgtype, header, msg)
        return Frame(index, log_time, stamp, 'header', msgtype, header, msg)


def decode(frame):
    """The frame's image as BGR uint8 (h, w, 3); ValueError with the reason when it cannot be decoded."""
    from openpose_ros.messages.conversions import compressed_msg_to_bgr, image_msg_to_bgr
    if frame.error:
        raise ValueError(frame.error)
    if frame.msgtype == COMPRESSED_IMAGE:
        return compressed_msg_to_bgr(frame.msg)
    return image_msg_to_bgr(frame.msg)
