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

Depth: a bag may also hold a depth image topic (sensor_msgs/Image named like depth, or in 16UC1 or 32FC1) and
its CameraInfo (camera_info in the depth topic's namespace). `frames(..., depth=DepthTopics)` pairs each colour
frame with the depth image of the same stamp, or of the nearest stamp within the slop (never another), and with
the CameraInfo of the nearest stamp read so far; a frame without such a depth image says why (depth_note).
"""
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from openpose_ros.messages.typestore import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, IMAGE_TYPES, stamp_ns

STORAGES = ('sqlite3', 'mcap')
DEPTH_TOPIC_ENCODINGS = ('16UC1', '32FC1')
# A colour frame waits for its depth image until the bag has been read this far past it (log time) ...
PAIRING_HORIZON_NS = 1_000_000_000
# ... among the last KEPT_DEPTH depth images and CameraInfos (about a second of a 30 Hz camera).
KEPT_DEPTH = 32
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
        """The messages of `connections` as (channel, log time in ns, serialised data), read again from the file in
        file order, up to the first incomplete record."""
        wanted = {connection.id for connection in connections}
        for channel, log_time, data in self._scan({}):
            if channel.id in wanted:
                yield channel, log_time, data

    def close(self):
        """Marks the reader closed (the file is open only while it is read)."""
        self.is_open = False


@dataclass(frozen=True)
class ImageTopic:
    """An image topic of a bag: its name, message type (sensor_msgs' Image or CompressedImage) and message count."""
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class DepthTopics:
    """The depth image topic, its CameraInfo topic, and the largest stamp difference (ns) of a pair."""
    image: str
    info: str
    slop_ns: int


@dataclass
class Frame:
    """One message of the image topic.

    index: position in the topic from the bag's first message (0-based; --start/--end do not change it);
    log_time_ns: when the recorder received it; stamp_ns: the header stamp, or log_time_ns when that is zero
    (stamp_source 'header' or 'log'); header: the message's std_msgs/Header (None when the message could
    not be deserialised); msg: the deserialised message; error: why it cannot be used, else None.
    With depth pairing: depth (the paired sensor_msgs/Image) and camera_info, or depth_note saying why there
    are none.
    """
    index: int
    log_time_ns: int
    stamp_ns: int
    stamp_source: str
    msgtype: str
    header: object = None
    msg: object = None
    error: str = None
    depth: object = None
    camera_info: object = None
    depth_note: str = None


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
        """Closes the bag's reader; closing it again does nothing."""
        if self.reader.is_open:
            self.reader.close()

    # --- metadata ------------------------------------------------------------------------------------------
    @property
    def start_ns(self):
        """Log time (ns) of the bag's first message; 0 for a bag without messages."""
        return int(self.reader.start_time) if self.reader.message_count else 0

    @property
    def end_ns(self):
        """Log time (ns) just after the bag's last message, as rosbags gives it; 0 for a bag without messages."""
        return int(self.reader.end_time) if self.reader.message_count else 0

    @property
    def duration_s(self):
        """Seconds from start_ns to end_ns."""
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
        colour = [t for t in images if not self._is_depth(t)] if len(images) > 1 else images
        if len(colour) > 1:
            raise BagError(f'{self.path} has several image topics: {listing}; choose one with --topic')
        return (colour or images)[0]

    def _is_depth(self, topic):
        """Whether an image topic holds depth: a sensor_msgs/Image named like depth, or in a depth encoding."""
        if topic.msgtype != IMAGE:
            return False
        if 'depth' in topic.name.lower():
            return True
        first = self._first_message(topic.name, IMAGE)
        return first is not None and first.encoding in DEPTH_TOPIC_ENCODINGS

    def _first_message(self, name, msgtype):
        connections = [c for c in self.reader.connections if c.topic == name and c.msgtype == msgtype]
        messages = self.reader.messages(connections)
        try:
            _, _, raw = next(messages)
            return self.store.deserialize_cdr(raw, msgtype)
        except Exception:  # none, or not readable: not a depth topic
            return None
        finally:
            messages.close()

    def _topic_types(self, name):
        return self.topics().get(name, [])

    def select_depth(self, colour, depth_topic=None, info_topic=None, slop_s=0.0):
        """The depth topics to pair with the colour topic `colour` (an ImageTopic), or None (no depth).

        `depth_topic` when given (a sensor_msgs/Image topic), else the bag's only depth topic other than the
        colour one; `info_topic` when given, else camera_info beside the depth topic. BagError for named topics
        that are not there or hold something else, and for several depth topics; a depth topic found without its
        CameraInfo (neither named) gives a warning and None."""
        asked = depth_topic is not None or info_topic is not None
        if depth_topic is not None:
            if IMAGE not in self._topic_types(depth_topic):
                raise BagError(f'the depth topic {depth_topic} is not a {IMAGE} topic of {self.path} '
                               f'({", ".join(self._topic_types(depth_topic)) or "no such topic"})')
        else:
            found = [t.name for t in self.image_topics() if t.name != colour.name and self._is_depth(t)]
            if len(found) > 1:
                raise BagError(f'{self.path} has several depth topics: {", ".join(found)}; choose one with '
                               f'--depth-topic, or --no-depth')
            if not found:
                if asked:
                    raise BagError(f'{self.path} has no depth topic for {info_topic}; name it with --depth-topic')
                return None
            depth_topic = found[0]
        named = info_topic is not None
        info_topic = info_topic if named else f'{depth_topic.rsplit("/", 1)[0]}/camera_info'
        if CAMERA_INFO not in self._topic_types(info_topic):
            refusal = (f'no {CAMERA_INFO} on {info_topic} for the depth topic {depth_topic}'
                       f'{"" if named else "; name it with --depth-info-topic"}')
            if asked:
                raise BagError(refusal)
            self.warnings.append(f'{refusal}: no 3D poses')
            return None
        return DepthTopics(depth_topic, info_topic, round(slop_s * 1e9))

    def _no_images(self):
        topics = self.topics()
        found = ', '.join(f'{name} ({", ".join(types)})' for name, types in topics.items()) or 'none'
        return (f'{self.path} holds no image topic ({IMAGE} or {COMPRESSED_IMAGE}); its topics: {found}')

    # --- frames --------------------------------------------------------------------------------------------
    def frames(self, topic, start_ns=None, end_ns=None, depth=None):
        """Frames of `topic` (an ImageTopic) whose log time is in [start_ns, end_ns) (absolute nanoseconds,
        None: unbounded), deserialised but not decoded, paired with their depth images when `depth`
        (DepthTopics) is given. A bag that breaks off mid-way raises BagError after the frames before the
        break."""
        pairs = DepthPairs(depth.slop_ns) if depth is not None else None
        wanted = {(topic.name, topic.msgtype)}
        if depth is not None:
            wanted |= {(depth.image, IMAGE), (depth.info, CAMERA_INFO)}
        connections = [c for c in self.reader.connections if (c.topic, c.msgtype) in wanted]
        messages = iter(self.reader.messages(connections))
        index, ended = -1, False
        while True:
            try:
                connection, log_time, raw = next(messages)
            except StopIteration:
                break
            except Exception as error:
                if pairs is not None:
                    yield from pairs.ready(None)
                raise BagError(f'{self.path} is corrupt or truncated: reading stopped after {index + 1} messages '
                               f'of {topic.name} ({type(error).__name__}: {error})') from error
            if connection.topic != topic.name:
                pairs.add(connection.msgtype, self._stamped(raw, connection.msgtype, int(log_time)))
            else:
                index += 1
                if start_ns is not None and log_time < start_ns:
                    continue
                if end_ns is not None and log_time >= end_ns:
                    if pairs is None:
                        return
                    ended = True  # the depth of the last frames may still follow
                elif not ended:
                    frame = self._frame(index, int(log_time), raw, topic.msgtype)
                    if pairs is None:
                        yield frame
                        continue
                    pairs.pending.append(frame)
            yield from pairs.ready(int(log_time))
            if ended and not pairs.pending:
                return
        if pairs is not None:
            yield from pairs.ready(None)

    def _stamped(self, raw, msgtype, log_time):
        """(stamp ns, message) of a depth image or CameraInfo (the log time where the header stamp is zero),
        None when it cannot be deserialised."""
        try:
            msg = self.store.deserialize_cdr(raw, msgtype)
            return stamp_ns(msg.header) or log_time, msg
        except Exception:
            return None

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


class DepthPairs:
    """Colour frames waiting for their depth image. A frame is paired with the depth image of its stamp, else of
    the nearest stamp within `slop_ns`, and with the CameraInfo nearest that depth image's stamp, once that is
    decided: the exact stamp was read, or a depth image stamped after the frame's stamp + slop (a nearer one
    cannot follow), and a CameraInfo as late as the depth image; or the bag was read PAIRING_HORIZON_NS past
    the frame, or it ended."""

    def __init__(self, slop_ns, horizon_ns=PAIRING_HORIZON_NS, kept=KEPT_DEPTH):
        self.slop_ns, self.horizon_ns = slop_ns, horizon_ns
        self.pending = deque()
        self.depths, self.infos = deque(maxlen=kept), deque(maxlen=kept)
        self.latest_depth_ns = None

    def add(self, msgtype, stamped):
        """Keeps a depth image or CameraInfo (by `msgtype`) read from the bag: `stamped` is (stamp ns, message), or None
        for a message that could not be read, which pairs with nothing. The oldest are forgotten beyond `kept` of
        each."""
        if stamped is None:      # a message that cannot be read pairs with nothing
            return
        if msgtype == CAMERA_INFO:
            self.infos.append(stamped)
            return
        self.depths.append(stamped)
        self.latest_depth_ns = max(stamped[0], self.latest_depth_ns or stamped[0])

    def ready(self, log_time_ns):
        """The waiting frames whose pairing is decided at `log_time_ns` (None: the bag ended), paired."""
        while self.pending and self._decided(self.pending[0], log_time_ns):
            yield self._paired(self.pending.popleft())

    def _decided(self, frame, log_time_ns):
        if log_time_ns is None or log_time_ns - frame.log_time_ns > self.horizon_ns:
            return True
        match = self._match(frame)
        if match is None or match[0] != frame.stamp_ns:      # a nearer depth image may still come
            if self.latest_depth_ns is None or self.latest_depth_ns <= frame.stamp_ns + self.slop_ns:
                return False
        # and the CameraInfo of the depth image (or a later one) has been read: it may change from frame to frame
        return match is None or any(stamp >= match[0] for stamp, _ in self.infos)

    def _match(self, frame):
        """(stamp, message) of the depth image nearest the frame's stamp within the slop, or None."""
        near = [(abs(stamp - frame.stamp_ns), stamp, msg) for stamp, msg in self.depths
                if abs(stamp - frame.stamp_ns) <= self.slop_ns]
        return min(near, key=lambda item: item[:2])[1:] if near else None

    def _paired(self, frame):
        match = self._match(frame)
        if match is None:
            frame.depth_note = 'no depth image with a matching stamp'
        elif not self.infos:
            frame.depth_note = 'no camera info'
        else:
            depth_stamp, frame.depth = match
            frame.camera_info = min(self.infos, key=lambda item: abs(item[0] - depth_stamp))[1]
        return frame
