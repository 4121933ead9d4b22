"""Skeleton markers for rviz (visualization_msgs/MarkerArray) from 3D poses: a sphere per valid keypoint, a line
list for the limbs whose two ends are valid, the track id as text above the person; one colour per track id.

Every marker has a lifetime, so the markers of people who leave disappear by themselves. Free of rclpy: the message
classes come from a provider (openpose_ros.messages.types), rclpy's for the node, a bag typestore's for bags.
"""
import colorsys

import numpy as np

from openpose_ros.keypoints import LIMBS, SKELETON
from openpose_ros.messages.types import RCLPY_TYPES
from openpose_ros.messages.typestore import COMPRESSED_IMAGE, MARKER_ARRAY

MARKER = 'visualization_msgs/msg/Marker'
POINT = 'geometry_msgs/msg/Point'

MARKER_LIFETIME = 0.5        # seconds: a few frames at camera rates, then a person who left is gone
KEYPOINT_DIAMETER = 0.05     # metres
LIMB_WIDTH = 0.02
TEXT_HEIGHT = 0.12
UNTRACKED_COLOUR = (0.8, 0.8, 0.8)


def track_colour(track_id):
    """An RGB colour per track id, far apart for consecutive ids (golden-ratio hue steps); grey untracked."""
    if track_id < 0:
        return UNTRACKED_COLOUR
    return colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)


def skeleton_markers(poses_3d_msg, lifetime=MARKER_LIFETIME, types=RCLPY_TYPES):
    """openpose_ros/Pose3DArray -> visualization_msgs/MarkerArray in its header's frame and stamp, of `types`
    (openpose_ros.messages.types: rclpy's classes by default, a bag typestore's with StoreTypes)."""
    Marker, Point = types[MARKER], types[POINT]
    seconds = int(lifetime)
    nanoseconds = int(round((lifetime - seconds) * 1e9))
    markers = []
    for index, pose in enumerate(poses_3d_msg.poses):
        red, green, blue = (float(c) for c in track_colour(pose.track_id))
        colour = types['std_msgs/msg/ColorRGBA'](r=red, g=green, b=blue, a=1.0)
        name = f'person {pose.track_id if pose.track_id >= 0 else index}'

        def marker(kind, namespace, scale, points=(), text='', position=(0.0, 0.0, 0.0)):
            return _marker(types, poses_3d_msg.header, f'{name} {namespace}', kind, scale, colour,
                           (seconds, nanoseconds), list(points), text, position)

        valid = [k.valid for k in pose.keypoints]
        if not any(valid):
            continue
        joints = marker(Marker.SPHERE_LIST, 'keypoints', KEYPOINT_DIAMETER,
                        [_point(Point, k.position) for k in pose.keypoints if k.valid])
        limbs = marker(Marker.LINE_LIST, 'limbs', LIMB_WIDTH,
                       [_point(Point, pose.keypoints[end].position)
                        for a, b in (LIMBS[limb] for limb in SKELETON) if valid[a] and valid[b] for end in (a, b)])
        markers += [joints] + ([limbs] if limbs.points else [])
        if pose.track_id >= 0 and pose.center_valid:
            above_head = min(k.position.y for k in pose.keypoints if k.valid) - 2 * TEXT_HEIGHT   # y is down
            markers.append(marker(Marker.TEXT_VIEW_FACING, 'id', TEXT_HEIGHT, text=str(pose.track_id),
                                  position=(pose.center.x, above_head, pose.center.z)))
    return types[MARKER_ARRAY](markers=markers)


def _point(Point, position):
    return Point(x=float(position.x), y=float(position.y), z=float(position.z))


def _marker(types, header, namespace, kind, scale, colour, lifetime, points, text, position):
    """One ADD marker with every field given (a bag typestore's classes have no defaults)."""
    x, y, z = (float(value) for value in position)
    no_bytes = types.byte_array(np.zeros(0, np.uint8))
    return types[MARKER](
        header=header, ns=namespace, id=0, type=kind, action=types[MARKER].ADD,
        pose=types['geometry_msgs/msg/Pose'](position=types[POINT](x=x, y=y, z=z),
                                             orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0,
                                                                                               w=1.0)),
        scale=types['geometry_msgs/msg/Vector3'](x=scale, y=scale, z=scale), color=colour,
        lifetime=types['builtin_interfaces/msg/Duration'](sec=lifetime[0], nanosec=lifetime[1]),
        frame_locked=False, points=points, colors=[], texture_resource='',
        texture=types[COMPRESSED_IMAGE](header=header, format='', data=no_bytes),
        uv_coordinates=[], text=text, mesh_resource='',
        mesh_file=types['visualization_msgs/msg/MeshFile'](filename='', data=no_bytes),
        mesh_use_embedded_materials=False)
