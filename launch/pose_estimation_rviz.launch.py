"""Launches pose_estimation_node (see pose_estimation.launch.py, whose arguments it takes) and rviz2 showing
the annotated image (config/openpose.rviz).

    ros2 launch openpose_ros pose_estimation_rviz.launch.py camera_topic:=/camera/image_raw weights:=/models/lwop
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'openpose_ros'
NODE_LAUNCH_FILE = os.path.join('launch', 'pose_estimation.launch.py')  # in the package's share folder
RVIZ_CONFIG = os.path.join('config', 'openpose.rviz')
RVIZ_PACKAGE = 'rviz2'
RVIZ_EXECUTABLE = 'rviz2'
ANNOTATED_TOPIC = 'image_annotated'  # the node's topic; the rviz config names it /image_annotated
MARKERS_TOPIC = 'skeleton_markers'   # with use_depth; the rviz config names it /skeleton_markers


def rviz_actions(context):
    """rviz2 with the config, its /image_annotated and /skeleton_markers remapped into the node's namespace."""
    namespace = LaunchConfiguration('namespace').perform(context).strip('/')
    remappings = [(f'/{topic}', f'/{namespace}/{topic}') for topic in (ANNOTATED_TOPIC, MARKERS_TOPIC)
                  if namespace]
    return [Node(
        package=RVIZ_PACKAGE,
        executable=RVIZ_EXECUTABLE,
        name='rviz2',
        arguments=['-d', LaunchConfiguration('rviz_config').perform(context)],
        parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time').perform(context).strip().lower()
                     in ('true', '1', 'yes', 'on')}],
        remappings=remappings,
        output='screen',
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument('rviz_config', default_value=os.path.join(share, RVIZ_CONFIG),
                              description='rviz2 configuration'),
        # Declares camera_topic, namespace, params_file, use_sim_time, weights, device, backend, input_type.
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(share, NODE_LAUNCH_FILE))),
        OpaqueFunction(function=rviz_actions),
    ])
