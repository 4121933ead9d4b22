"""Skeleton markers for rviz (visualization_msgs/MarkerArray) from 3D poses: a sphere per valid keypoint, a line
list for the limbs whose two ends are valid, the track id as text above the person; one colour per track id.

Every marker has a lifetime, so the markers of people who leave disappear by themselves. Free of rclpy (it
builds messages only).
"""
import colorsys

from openpose_ros.keypoints import LIMBS, SKELETON

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


def skeleton_markers(poses_3d_msg, lifetime=MARKER_LIFETIME):
    """openpose_ros/Pose3DArray -> visualization_msgs/MarkerArray in its header's frame and stamp."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    seconds = int(lifetime)
    nanoseconds = int(round((lifetime - seconds) * 1e9))
    markers = []
    for index, pose in enumerate(poses_3d_msg.poses):
        colour = ColorRGBA(a=1.0)
        colour.r, colour.g, colour.b = track_colour(pose.track_id)
        name = f'person {pose.track_id if pose.track_id >= 0 else index}'

        def marker(kind, namespace, scale):
            made = Marker(header=poses_3d_msg.header, ns=f'{name} {namespace}', id=0, type=kind,
                          action=Marker.ADD, color=colour)
            made.lifetime.sec, made.lifetime.nanosec = seconds, nanoseconds
            made.pose.orientation.w = 1.0
            made.scale.x = made.scale.y = made.scale.z = scale
            return made

        valid = [k.valid for k in pose.keypoints]
        if not any(valid):
            continue
        joints = marker(Marker.SPHERE_LIST, 'keypoints', KEYPOINT_DIAMETER)
        joints.points = [Point(x=k.position.x, y=k.position.y, z=k.position.z) for k in pose.keypoints if k.valid]
        limbs = marker(Marker.LINE_LIST, 'limbs', LIMB_WIDTH)
        limbs.points = [Point(x=pose.keypoints[end].position.x, y=pose.keypoints[end].position.y,
                              z=pose.keypoints[end].position.z)
                        for a, b in (LIMBS[limb] for limb in SKELETON) if valid[a] and valid[b] for end in (a, b)]
        markers += [joints] + ([limbs] if limbs.points else [])
        if pose.track_id >= 0 and pose.center_valid:
            label = marker(Marker.TEXT_VIEW_FACING, 'id', TEXT_HEIGHT)
            label.text = str(pose.track_id)
            label.pose.position = Point(x=pose.center.x, y=min(k.position.y for k in pose.keypoints if k.valid)
                                        - 2 * TEXT_HEIGHT, z=pose.center.z)       # above the head (y is down)
            markers.append(label)
    return MarkerArray(markers=markers)
