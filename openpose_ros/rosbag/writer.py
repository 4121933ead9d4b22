"""The output bag: what the pose estimation node would have published, under its topic names.

Topics (relative to `namespace`, as the node's are to its namespace):
  poses                       openpose_ros/msg/Pose2DArray, one per processed frame (empty when nobody is seen)
  image_annotated             sensor_msgs/msg/Image, bgr8: the frame with the skeletons drawn   (annotated='raw')
  image_annotated/compressed  sensor_msgs/msg/CompressedImage, JPEG                          (annotated='jpeg')
Every message carries the input frame's header (stamp and frame_id copied) and is written at a log time given by
the caller (the input frame's log time for a plain run), so that `ros2 bag play` replays it in step.
close() writes metadata.yaml: call it also after an interruption, the bag is then complete up to there.
"""
import shutil
from pathlib import Path

from openpose_ros.rosbag import messages
from openpose_ros.rosbag.reader import STORAGES

POSES_TOPIC = 'poses'
ANNOTATED_TOPIC = 'image_annotated'
ANNOTATED_MODES = ('raw', 'jpeg', 'none')


def topic_name(namespace, name):
    """'/ns/name' for a namespace ('' or '/' for none; leading and trailing slashes are ignored)."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def _is_bag_folder(path):
    allowed = {'.db3', '.mcap', '.yaml', '.db3-journal', '.db3-wal', '.db3-shm'}
    return path.is_dir() and all(p.is_file() and ''.join(p.suffixes[-1:]) in allowed for p in path.iterdir())


class OutputBag:
    """A bag being written (rosbags Writer). `write()` one processed frame at a time; `close()` at the end."""

    def __init__(self, path, storage, store, namespace='', annotated='raw', overwrite=False, jpeg_quality=90):
        from rosbags.rosbag2 import StoragePlugin, Writer
        if storage not in STORAGES:
            raise ValueError(f'storage must be one of {", ".join(STORAGES)}, not {storage!r}')
        if annotated not in ANNOTATED_MODES:
            raise ValueError(f'annotated must be one of {", ".join(ANNOTATED_MODES)}, not {annotated!r}')
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f'the output bag {self.path} exists already (choose another output, or '
                                      f'overwrite it)')
            if not _is_bag_folder(self.path):
                raise FileExistsError(f'{self.path} exists and is not a bag folder; not overwriting it')
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.storage, self.store, self.annotated = storage, store, annotated
        self.jpeg_quality = jpeg_quality
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.topics = {'poses': topic_name(namespace, POSES_TOPIC)}
        self._poses = self.writer.add_connection(self.topics['poses'], messages.POSE_ARRAY, typestore=store)
        self._image = None
        if annotated != 'none':
            name = ANNOTATED_TOPIC if annotated == 'raw' else f'{ANNOTATED_TOPIC}/compressed'
            msgtype = messages.IMAGE if annotated == 'raw' else messages.COMPRESSED_IMAGE
            self.topics['image_annotated'] = topic_name(namespace, name)
            self._image = self.writer.add_connection(self.topics['image_annotated'], msgtype, typestore=store)
        self.counts = {topic: 0 for topic in self.topics.values()}
        self.closed = False

    def write(self, header, poses, annotated_bgr, log_time_ns):
        """Writes one frame's Pose2DArray and (unless annotated='none') its annotated image."""
        pose_bytes = self.store.serialize_cdr(messages.pose_array(self.store, poses, header), messages.POSE_ARRAY)
        image_bytes = None
        if self._image is not None:
            if self.annotated == 'raw':
                msg, msgtype = messages.image(self.store, annotated_bgr, header), messages.IMAGE
            else:
                msg = messages.compressed_image(self.store, annotated_bgr, header, self.jpeg_quality)
                msgtype = messages.COMPRESSED_IMAGE
            image_bytes = self.store.serialize_cdr(msg, msgtype)
        # Everything serialised first, so that a frame is written whole or not at all.
        self.writer.write(self._poses, int(log_time_ns), bytes(pose_bytes))
        self.counts[self.topics['poses']] += 1
        if image_bytes is not None:
            self.writer.write(self._image, int(log_time_ns), bytes(image_bytes))
            self.counts[self.topics['image_annotated']] += 1

    def close(self):
        """Finishes the bag (index, metadata.yaml); idempotent."""
        if not self.closed:
            self.closed = True
            self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
