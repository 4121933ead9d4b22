"""The output bag: what the pose estimation node would have published, under its topic names.

Topics (relative to `namespace`, as the node's are to its namespace):
  poses                       openpose_ros/msg/Pose2DArray, one per processed frame (empty when nobody is seen)
  image_annotated/compressed  sensor_msgs/msg/CompressedImage, JPEG: the frame with the skeletons drawn, as
                              image_transport's compressed plugin names it                (annotated='compressed')
  image_annotated             sensor_msgs/msg/Image, bgr8 (ten times larger or more)             (annotated='raw')
With depth (the input bag's depth topic paired with the frames), also, for each frame paired with a depth image:
  poses_3d                    openpose_ros/msg/Pose3DArray: the frame's stamp, the depth CameraInfo's frame_id
  skeleton_markers            visualization_msgs/msg/MarkerArray (openpose_ros.messages.markers)
With hri, also the node's REP-155 topics (absolute names, as the node's): /humans/bodies/tracked
(hri_msgs/msg/IdsList) every frame, and /humans/bodies/<id>/roi and /humans/bodies/<id>/skeleton2d for each
body seen in the frame.
Every message carries the input frame's header (stamp and frame_id copied) and is written at a log time given by
the caller (the input frame's log time for a plain run), so that `ros2 bag play` replays it in step.
close() writes metadata.yaml: call it also after an interruption or an error, the bag is then complete up to
there. Writing stops (OutputError) while FREE_SPACE_MARGIN bytes are still free on the bag's disk, so that
there is room to close the bag and write the report. When a write fails all the same (a quota, a file size
limit, an I/O error), what was written before stays readable: an sqlite3 bag commits every frame and rolls back
the failed one; an mcap file is cut after its last complete record and ended without an index (rosbags and
bag_eval read it; without metadata.yaml, `ros2 bag reindex` makes one for `ros2 bag play`).

The bag folder holds a marker, MARKER_NAME, listing the files bag_eval writes there: `overwrite` replaces only
a folder that has it and nothing else than what it lists, never a folder of someone else's files.
"""
import contextlib
import json
import shutil
from pathlib import Path

from openpose_ros.files import check_writable_folder, write_text
from openpose_ros.formats.bag_reader import STORAGES
from openpose_ros.messages.bodies import TRACKED_TOPIC, body_topic, ids_list_msg, roi_msg, skeleton2d_msg
from openpose_ros.messages import typestore as messages
from openpose_ros.messages.conversions import bgr_to_image_msg, compressed_image_msg, poses_to_msg
from openpose_ros.messages.markers import skeleton_markers
from openpose_ros.messages.types import StoreTypes

POSES_TOPIC = 'poses'
POSES_3D_TOPIC = 'poses_3d'
MARKERS_TOPIC = 'skeleton_markers'
ANNOTATED_TOPIC = 'image_annotated'
ANNOTATED_MODES = ('compressed', 'raw', 'none')
MARKER_NAME = '.openpose_bag_eval.json'
MARKER_KIND = 'openpose_ros bag_eval output bag'
FREE_SPACE_MARGIN = 16 * 2**20
_STORAGE_SUFFIX = {'sqlite3': '.db3', 'mcap': '.mcap'}
_SQLITE_SIDE_FILES = ('-journal', '-wal', '-shm')


class OutputError(Exception):
    """An output that cannot be written (a read-only folder, a full disk, ...); the message says where."""


def topic_name(namespace, name):
    """'/ns/name' for a namespace ('' or '/' for none; leading and trailing slashes are ignored)."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def ensure_writable(folder) -> Path:
    """Creates `folder` (and its parents) and checks that a file can be written there; OutputError otherwise."""
    try:
        return check_writable_folder(folder)
    except OSError as error:
        raise OutputError(f'cannot write into {folder}: {error.strerror or error}; choose another output '
                          f'folder') from error


def _bag_files(path, storage):
    """The files bag_eval may write into the output bag `path` of `storage`."""
    data = path.name + _STORAGE_SUFFIX[storage]
    side = [data + suffix for suffix in _SQLITE_SIDE_FILES] if storage == 'sqlite3' else []
    return ['metadata.yaml', data, *side]


def _owned_files(path):
    """The files of the bag folder `path` that bag_eval wrote (its marker's list and the marker); FileExistsError
    when `path` is not an output bag of bag_eval or holds other files."""
    refusal = f'{path} exists and is not an output bag of bag_eval'
    marker = path / MARKER_NAME
    if path.is_symlink() or not path.is_dir() or not marker.is_file():
        raise FileExistsError(f'{refusal} (no {MARKER_NAME} in it); not overwriting it: choose another output '
                              f'bag, or remove it yourself')
    try:
        content = json.loads(marker.read_text(encoding='utf-8'))
        listed = {str(name) for name in content['files'] if '/' not in str(name)} | {MARKER_NAME}
        if content['kind'] != MARKER_KIND:
            raise ValueError(content['kind'])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FileExistsError(f'{refusal} (unreadable {MARKER_NAME}: {error}); not overwriting it') from error
    others = sorted(p.name for p in path.iterdir() if p.name not in listed or not p.is_file())
    if others:
        raise FileExistsError(f'{path} holds files that bag_eval did not write ({", ".join(others[:5])}'
                              f'{", ..." if len(others) > 5 else ""}); not overwriting it: choose another output '
                              f'bag, or move them away')
    return [path / name for name in sorted(listed) if (path / name).is_file()]


def check_output_bag(path, overwrite: bool = False) -> None:
    """Refuses (FileExistsError) an existing `path` unless `overwrite` and it is an output bag of bag_eval with
    nothing else in it; creates and checks its parent folder (OutputError)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f'the output bag {path} exists already (choose another output, or pass '
                                  f'--overwrite to replace it)')
        _owned_files(path)
    ensure_writable(path.parent)


def remove_output_bag(path) -> None:
    """Removes an earlier output bag of bag_eval: the files its marker lists, the marker, the folder."""
    path = Path(path)
    owned = _owned_files(path)
    marker = path / MARKER_NAME
    for file in owned:
        if file != marker:
            file.unlink()
    marker.unlink()
    path.rmdir()


def _end_truncated_mcap(file):
    """Cuts the mcap `file` after its last complete record and ends it with a data end record and a footer
    without summary (a valid mcap file, read by scanning it); returns what was done, for the error message."""
    from openpose_ros.formats.bag_reader import TruncatedMcap
    try:
        end = TruncatedMcap(file).end_offset
        with open(file, 'r+b') as stream:
            stream.truncate(end)
            stream.seek(end)
            stream.write(_MCAP_DATA_END + _MCAP_FOOTER + _MCAP_MAGIC)
    except Exception as error:
        return f'its mcap file could not be ended ({type(error).__name__}: {error}): it is truncated'
    return ('its mcap file was cut after the last complete chunk and ended without an index, and it has no '
            'metadata.yaml (`ros2 bag reindex` makes one)')


_MCAP_MAGIC = b'\x89MCAP0\r\n'
_MCAP_DATA_END = b'\x0f' + (4).to_bytes(8, 'little') + bytes(4)          # data section crc 0: not computed
_MCAP_FOOTER = b'\x02' + (20).to_bytes(8, 'little') + bytes(20)          # no summary section


class OutputBag:
    """A bag being written (rosbags Writer). `write()` one processed frame at a time; `close()` at the end.

    Raises FileExistsError for an existing `path` that may not be replaced (see check_output_bag), OutputError
    when it cannot be written."""

    def __init__(self, path, storage, store, namespace='', annotated='compressed', overwrite=False,
                 jpeg_quality=90, hri=False, depth=False):
        from rosbags.rosbag2 import StoragePlugin, Writer
        if storage not in STORAGES:
            raise ValueError(f'storage must be one of {", ".join(STORAGES)}, not {storage!r}')
        if annotated not in ANNOTATED_MODES:
            raise ValueError(f'annotated must be one of {", ".join(ANNOTATED_MODES)}, not {annotated!r}')
        self.path = Path(path)
        check_output_bag(self.path, overwrite)
        if self.path.exists():
            remove_output_bag(self.path)
        self.storage, self.store, self.annotated = storage, store, annotated
        self.types = StoreTypes(store)
        self.jpeg_quality = jpeg_quality
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        try:
            self.writer.open()
            if storage == 'sqlite3':
                # Each frame is committed (see write()); not synced to the disk on each commit, which would cost
                # ~30 ms a frame: a crash of this process still leaves every committed frame in the file.
                self.writer.storage.conn.execute('PRAGMA synchronous=OFF')
            write_text(self.path / MARKER_NAME, json.dumps(
                {'kind': MARKER_KIND, 'files': _bag_files(self.path, storage)}, indent=1) + '\n')
        except OSError as error:
            raise OutputError(f'cannot write the output bag {self.path}: {error.strerror or error}') from error
        self.topics = {'poses': topic_name(namespace, POSES_TOPIC)}
        self._poses = self.writer.add_connection(self.topics['poses'], messages.POSE_ARRAY, typestore=store)
        self._image = None
        if annotated != 'none':
            name = ANNOTATED_TOPIC if annotated == 'raw' else f'{ANNOTATED_TOPIC}/compressed'
            msgtype = messages.IMAGE if annotated == 'raw' else messages.COMPRESSED_IMAGE
            self.topics['image_annotated'] = topic_name(namespace, name)
            self._image = self.writer.add_connection(self.topics['image_annotated'], msgtype, typestore=store)
        self.depth = depth
        self._depth = []    # (connection, message type) of poses_3d and skeleton_markers
        if depth:
            for key, name, msgtype in (('poses_3d', POSES_3D_TOPIC, messages.POSE_3D_ARRAY),
                                       ('skeleton_markers', MARKERS_TOPIC, messages.MARKER_ARRAY)):
                self.topics[key] = topic_name(namespace, name)
                self._depth.append((self.writer.add_connection(self.topics[key], msgtype, typestore=store),
                                    msgtype))
        self._hri = {}  # topic -> connection of the REP-155 topics, added as bodies appear
        if hri:
            self.topics['hri_tracked'] = TRACKED_TOPIC
            self._hri[TRACKED_TOPIC] = self.writer.add_connection(TRACKED_TOPIC, messages.IDS_LIST, typestore=store)
        self.counts = {topic: 0 for topic in self.topics.values()}
        self.closed = False
        self.broken = False         # a write failed in a way that rosbags cannot close cleanly (mcap)

    def write(self, header, poses, annotated_bgr, log_time_ns, bodies=None, poses_3d=None):
        """Writes one frame's Pose2DArray, (unless annotated='none') its annotated image, (with hri) its REP-155
        messages from `bodies` (openpose_ros.messages.bodies.FrameBodies) and (with depth) its Pose3DArray
        `poses_3d` with its skeleton markers. OutputError when the disk is nearly full (nothing written) or the
        write fails."""
        pose_bytes = self.store.serialize_cdr(poses_to_msg(poses, header, self.types), messages.POSE_ARRAY)
        depth = []
        if poses_3d is not None:
            markers = skeleton_markers(poses_3d, types=self.types)
            depth = [(connection, self.store.serialize_cdr(msg, msgtype))
                     for (connection, msgtype), msg in zip(self._depth, (poses_3d, markers))]
        hri = self._hri_messages(header, bodies) if self._hri else []
        image_bytes = None
        if self._image is not None:
            if self.annotated == 'raw':
                msg, msgtype = bgr_to_image_msg(annotated_bgr, header, types=self.types), messages.IMAGE
            else:
                msg = compressed_image_msg(annotated_bgr, header, quality=self.jpeg_quality, types=self.types)
                msgtype = messages.COMPRESSED_IMAGE
            image_bytes = self.store.serialize_cdr(msg, msgtype)
        # Everything serialised and the space checked first, so that a frame is written whole or not at all.
        self._check_space(len(pose_bytes) + (len(image_bytes) if image_bytes is not None else 0)
                          + sum(len(data) for _, _, data in hri) + sum(len(data) for _, data in depth))
        before = (dict(self.writer.counts), self.writer.min_timestamp, self.writer.max_timestamp)
        try:
            self.writer.write(self._poses, int(log_time_ns), bytes(pose_bytes))
            if image_bytes is not None:
                self.writer.write(self._image, int(log_time_ns), bytes(image_bytes))
            for connection, data in depth:
                self.writer.write(connection, int(log_time_ns), bytes(data))
            for topic, msgtype, data in hri:
                if topic not in self._hri:
                    self._hri[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
                self.writer.write(self._hri[topic], int(log_time_ns), bytes(data))
            if self.storage == 'sqlite3':
                self.writer.storage.conn.commit()
        except Exception as error:  # OSError, sqlite3.Error: the storage could not take it
            self._undo_frame(*before)
            raise OutputError(f'writing the output bag {self.path} failed: {type(error).__name__}: {error}') \
                from error
        self.counts[self.topics['poses']] += 1
        if image_bytes is not None:
            self.counts[self.topics['image_annotated']] += 1
        for connection, _ in depth:
            self.counts[connection.topic] += 1
        for topic, _, _ in hri:
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def _hri_messages(self, header, bodies):
        """[(topic, message type, serialised message)] of one frame's REP-155 output."""
        out = [(TRACKED_TOPIC, messages.IDS_LIST, ids_list_msg(bodies.ids, header, self.types))]
        for body_id, pose in bodies.seen:
            out.append((body_topic(body_id, 'roi'), messages.ROI,
                        roi_msg(pose, header, bodies.width, bodies.height, self.types)))
            out.append((body_topic(body_id, 'skeleton2d'), messages.SKELETON2D,
                        skeleton2d_msg(pose, header, bodies.width, bodies.height, self.types)))
        return [(topic, msgtype, self.store.serialize_cdr(msg, msgtype)) for topic, msgtype, msg in out]

    def _undo_frame(self, counts, min_timestamp, max_timestamp):
        """After a failed write: sqlite3 rolls the frame back (the earlier frames are committed) and the
        metadata forgets it; an mcap file holds part of a chunk, which close() cuts off."""
        if self.storage == 'sqlite3':
            with contextlib.suppress(Exception):
                self.writer.storage.conn.rollback()
            self.writer.counts.update(counts)
            self.writer.min_timestamp, self.writer.max_timestamp = min_timestamp, max_timestamp
        else:
            self.broken = True

    def _check_space(self, size):
        free = shutil.disk_usage(self.path).free
        if free < size + FREE_SPACE_MARGIN:
            raise OutputError(f'the disk of the output bag {self.path} is full: {free / 2**20:.1f} MiB free, '
                              f'{FREE_SPACE_MARGIN // 2**20} MiB are kept to close the bag and write the report')

    def close(self):
        """Finishes the bag (index, metadata.yaml); idempotent. OutputError when that fails: an mcap file is then
        ended after its last complete record (see the module docstring), and `counts` are those read back."""
        if self.closed:
            return
        self.closed = True
        failure = None
        if not self.broken:
            try:
                self.writer.close()
                return
            except Exception as error:
                failure = f'{type(error).__name__}: {error}'
        with contextlib.suppress(Exception):   # the failure is told below
            self.writer.abort()
        state = 'it has no metadata.yaml'
        if self.storage == 'mcap':
            state = _end_truncated_mcap(self.path / (self.path.name + '.mcap'))
        self.counts = self._read_back_counts()
        raise OutputError(f'the output bag {self.path} could not be finished'
                          + (f' ({failure})' if failure else '') + f': {state}; it holds '
                          + ', '.join(f'{count} {topic}' for topic, count in self.counts.items()))

    def _read_back_counts(self):
        """{topic: messages} of what the storage file really holds (zeros when it cannot be read)."""
        from openpose_ros.formats.bag_reader import BagInput
        counts = dict.fromkeys(self.counts, 0)
        with contextlib.suppress(Exception):
            with BagInput(self.path, self.store) as written:
                for connection, _, _ in written.reader.messages(list(written.reader.connections)):
                    counts[connection.topic] = counts.get(connection.topic, 0) + 1
        return counts

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
