"""Conversions between ROS messages and numpy: images in, poses out.

The image readers only read attributes (encoding, height, width, step, is_bigendian, data; format and data for
compressed images), so they also take the messages that `rosbags` deserialises, without rclpy. The builders take
their message classes from a provider (openpose_ros.messages.types): rclpy's for the node and the video
publisher, a bag typestore's for bags, so that both publish the same bytes.

Every malformed message raises openpose_ros.inference.image.ImageRejected (a ValueError) with a message that says
what is wrong.
"""
import array

import cv2
import numpy as np

from openpose_ros.inference.image import ImageRejected, check_pixel_count, decode
from openpose_ros.keypoints import NUM_KEYPOINTS
from openpose_ros.messages.types import RCLPY_TYPES, header as make_header
from openpose_ros.messages.typestore import COMPRESSED_IMAGE, IMAGE, POSE_3D_ARRAY, POSE_ARRAY

POINT = 'geometry_msgs/msg/Point'

# encoding -> (channels, bytes per channel, conversion to BGR: a cv2 colour code, None for none, or 'scale')
_ENCODINGS = {
    'bgr8': (3, 1, None),
    '8UC3': (3, 1, None),
    'rgb8': (3, 1, cv2.COLOR_RGB2BGR),
    'bgra8': (4, 1, cv2.COLOR_BGRA2BGR),
    '8UC4': (4, 1, cv2.COLOR_BGRA2BGR),
    'rgba8': (4, 1, cv2.COLOR_RGBA2BGR),
    'mono8': (1, 1, cv2.COLOR_GRAY2BGR),
    '8UC1': (1, 1, cv2.COLOR_GRAY2BGR),
    'mono16': (1, 2, 'scale'),
    '16UC1': (1, 2, 'scale'),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
# encoding -> (conversion from BGR, channels) of the images made here
_FROM_BGR = {
    'bgr8': (None, 3), 'rgb8': (cv2.COLOR_BGR2RGB, 3), 'mono8': (cv2.COLOR_BGR2GRAY, 1),
    'bgra8': (cv2.COLOR_BGR2BGRA, 4), 'rgba8': (cv2.COLOR_BGR2RGBA, 4),
}
OUTPUT_ENCODINGS = tuple(_FROM_BGR)


def _bytes_view(data, what):
    """msg.data (array.array, bytes, uint8 numpy array or a sequence of ints) as a 1-D uint8 array, a view if it can."""
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, np.uint8)
    values = np.asarray(data)
    if values.size and (values.dtype.kind not in 'iu' or values.min() < 0 or values.max() > 255):
        raise ImageRejected('data', f'{what} data must hold bytes (integers in 0..255), got {values.dtype} values')
    return values.astype(np.uint8).reshape(-1)


def image_msg_to_bgr(msg):
    """sensor_msgs/Image -> BGR uint8 array (height, width, 3).

    Encodings: bgr8, rgb8, bgra8, rgba8, mono8, mono16, and 8UC1/8UC3/8UC4/16UC1 read as mono8/bgr8/bgra8/mono16.
    Rows may be padded (`step` larger than width x bytes per pixel). bgr8 and 8UC3 give a view of msg.data
    (no copy; read-only when data is bytes, and writing to it changes the message): copy it before drawing on it.
    The other encodings are converted in one pass. 16-bit images are scaled so that their maximum becomes 255.
    """
    encoding = msg.encoding
    if encoding not in _ENCODINGS:
        raise ImageRejected('encoding', f'unsupported image encoding {encoding!r} '
                                        f'(supported: {", ".join(SUPPORTED_ENCODINGS)})')
    channels, depth, conversion = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageRejected('empty', f'empty image: {width}x{height} pixels')
    check_pixel_count(width, height)
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageRejected('step', f'image step {step} is smaller than a row of {width} {encoding} pixels '
                                    f'({row_bytes} bytes)')
    if step % depth:
        raise ImageRejected('step', f'image step {step} is not a multiple of the {depth}-byte pixel depth of '
                                    f'{encoding}')
    data = _bytes_view(msg.data, 'image')
    needed = step * height
    if data.size < needed:
        raise ImageRejected('truncated', f'image data is truncated: {data.size} bytes, expected step x height = '
                                         f'{step} x {height} = {needed}')
    dtype = np.dtype(np.uint8) if depth == 1 else np.dtype('>u2' if msg.is_bigendian else '<u2')
    pixels = np.ndarray((height, width, channels), dtype, buffer=data, strides=(step, channels * depth, depth))
    if conversion is None:
        return pixels
    if conversion == 'scale':
        gray = pixels[:, :, 0].astype(np.uint16, copy=not dtype.isnative)
        peak = int(gray.max())
        gray = cv2.convertScaleAbs(gray, alpha=255.0 / peak) if peak else np.zeros(gray.shape, np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(pixels[:, :, 0] if channels == 1 else pixels, conversion)


def compressed_msg_to_bgr(msg):
    """sensor_msgs/CompressedImage (JPEG or PNG) -> BGR uint8 array (h, w, 3).

    The size the header declares is checked against the pixel limit before decoding, and cut JPEGs are refused
    (openpose_ros.inference.image.decode)."""
    data = np.ascontiguousarray(_bytes_view(msg.data, 'compressed image'))
    described = f'compressed image (format {getattr(msg, "format", "")!r}, {data.size} bytes)'
    return decode(data, cv2.IMREAD_COLOR, described)


def bgr_to_image_msg(image, header=None, encoding='bgr8', row_padding=0, types=RCLPY_TYPES):
    """BGR uint8 array (height, width, 3) -> sensor_msgs/Image in `encoding` (one of OUTPUT_ENCODINGS) with the given
    std_msgs/Header, of `types` (openpose_ros.messages.types: rclpy's classes by default, a bag typestore's with
    StoreTypes). Rows are padded with `row_padding` zero bytes (step = width x channels + row_padding)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected a BGR uint8 array of shape (height, width, 3), got {image.dtype} {image.shape}')
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f'empty image: {width}x{height} pixels')
    conversion, channels = _FROM_BGR[encoding]
    pixels = image if conversion is None else cv2.cvtColor(image, conversion)
    if row_padding:
        rows = pixels.reshape(height, width * channels)
        pixels = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    return types.new(IMAGE, header=header if header is not None else make_header(types), height=height,
                     width=width, encoding=encoding, is_bigendian=0, step=width * channels + row_padding,
                     data=types.byte_array(pixels))  # the only copy (none for a contiguous bgr8 typestore image)


def compressed_image_msg(image, header=None, codec='jpeg', quality=90, format_name=None, types=RCLPY_TYPES):
    """BGR uint8 array (height, width, 3) -> sensor_msgs/CompressedImage, JPEG at `quality` or PNG (`codec`), of
    `types` (as bgr_to_image_msg). `format_name` is its format field, by default image_transport's convention
    ('bgr8; jpeg compressed bgr8')."""
    ok, data = cv2.imencode('.jpg' if codec == 'jpeg' else '.png', image,
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == 'jpeg' else [])
    if not ok:
        raise ValueError(f'OpenCV could not encode the image as {codec}')
    return types.new(COMPRESSED_IMAGE, header=header if header is not None else make_header(types),
                     format=format_name if format_name is not None else f'bgr8; {codec} compressed bgr8',
                     data=types.byte_array(data))


def poses_to_msg(poses, header=None, types=RCLPY_TYPES):
    """Poses (openpose_ros.pose.Pose, or objects with the same attributes) -> openpose_ros/Pose2DArray, of `types`
    (as bgr_to_image_msg).

    Per pose: keypoints (18, 2) in pixels with x = -1 where missing, keypoint_scores (18,), confidence (pose
    score), id (-1 untracked), bbox (x, y, width, height). Scores are clipped to [0, 1]; missing keypoints get
    valid = false, x = y = -1 and score 0.
    """
    Keypoint2D, BoundingBox2D = types['openpose_ros/msg/Keypoint2D'], types['openpose_ros/msg/BoundingBox2D']
    Pose2D = types['openpose_ros/msg/Pose2D']
    out = []
    for pose in poses:
        points = np.asarray(pose.keypoints, np.float64).reshape(NUM_KEYPOINTS, 2)
        scores = np.clip(np.asarray(pose.keypoint_scores, np.float64).reshape(NUM_KEYPOINTS), 0.0, 1.0)
        found = np.asarray(pose.found, bool).reshape(NUM_KEYPOINTS)
        points = np.where(found[:, None], points, -1.0)
        scores = np.where(found, scores, 0.0)
        x, y, width, height = (float(v) for v in pose.bbox)
        out.append(Pose2D(
            track_id=int(pose.id),
            score=float(np.clip(pose.confidence, 0.0, 1.0)),
            bbox=BoundingBox2D(x=x, y=y, width=width, height=height),
            keypoints=[Keypoint2D(x=kx, y=ky, score=s, valid=v)
                       for (kx, ky), s, v in zip(points.tolist(), scores.tolist(), found.tolist())],
        ))
    return types[POSE_ARRAY](header=header if header is not None else make_header(types), poses=out)


def msg_to_poses(msg):
    """openpose_ros/Pose2DArray -> list of openpose_ros.pose.Pose (the inverse of poses_to_msg)."""
    from openpose_ros.pose import Pose

    poses = []
    for pose_msg in msg.poses:
        keypoints = np.array([(k.x, k.y) if k.valid else (-1.0, -1.0) for k in pose_msg.keypoints], np.float32)
        scores = np.array([k.score if k.valid else 0.0 for k in pose_msg.keypoints], np.float32)
        poses.append(Pose(keypoints, pose_msg.score, scores, pose_msg.track_id))
    return poses


def poses_3d_to_msg(poses, lifted, header=None, types=RCLPY_TYPES):
    """Poses and their openpose_ros.inference.lifting.LiftedPoses -> openpose_ros/Pose3DArray, of `types`
    (openpose_ros.messages.types: rclpy's classes by default, a bag typestore's with StoreTypes).

    Per pose: the track id and confidence of the 2D pose, keypoint scores clipped to [0, 1]; keypoints and
    centres without valid depth get valid = false and position 0, 0, 0 (never NaN).
    """
    Point, Keypoint3D = types[POINT], types['openpose_ros/msg/Keypoint3D']
    Pose3D, Pose3DArray = types['openpose_ros/msg/Pose3D'], types[POSE_3D_ARRAY]
    out = []
    for index, pose in enumerate(poses):
        valid = np.asarray(lifted.valid[index], bool)
        points = np.where(valid[:, None], lifted.points[index], 0.0).astype(np.float64)
        scores = np.where(valid, np.clip(np.asarray(pose.keypoint_scores, np.float64), 0.0, 1.0), 0.0)
        center_valid = bool(lifted.center_valid[index])
        center = lifted.centers[index].astype(np.float64) if center_valid else np.zeros(3)
        out.append(Pose3D(
            track_id=int(pose.id),
            score=float(np.clip(pose.confidence, 0.0, 1.0)),
            keypoints=[Keypoint3D(position=Point(x=x, y=y, z=z), score=s, valid=v)
                       for (x, y, z), s, v in zip(points.tolist(), scores.tolist(), valid.tolist())],
            center=Point(x=float(center[0]), y=float(center[1]), z=float(center[2])),
            center_valid=center_valid,
        ))
    return Pose3DArray(header=header if header is not None else make_header(types), poses=out)


_DEPTH_ENCODINGS = {'16UC1': np.dtype('<u2'), 'mono16': np.dtype('<u2'), '32FC1': np.dtype('<f4')}
DEPTH_ENCODINGS = tuple(_DEPTH_ENCODINGS)


def depth_msg_to_array(msg):
    """sensor_msgs/Image 16UC1 (mm) or 32FC1 (m) -> (height, width) uint16 or float32 array (a copy)."""
    dtype = _DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ValueError(f'unsupported depth encoding {msg.encoding!r} (use 16UC1 millimetres or 32FC1 metres)')
    if msg.is_bigendian:
        dtype = dtype.newbyteorder('>')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_pixel_count(width, height, 'the depth image')
    data = _bytes_view(msg.data, 'depth image')
    if step < width * dtype.itemsize or data.size < step * height:
        raise ValueError(f'malformed depth image: {width}x{height}, step {step}, {data.size} bytes')
    rows = data[:step * height].reshape(height, step)[:, :width * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(dtype.newbyteorder('='))
