"""Launches pose_estimation_node (openpose_ros) with config/pose_estimation.yaml.

    ros2 launch openpose_ros pose_estimation.launch.py camera_topic:=/camera/color/image_raw weights:=/models/lwop
    ros2 launch openpose_ros pose_estimation.launch.py input_type:=compressed camera_topic:=/camera/image_raw
    ros2 launch openpose_ros pose_estimation.launch.py use_sim_time:=true    (with `ros2 bag play --clock ...`)

The launch arguments that name a node parameter (weights, device, backend, input_type) override the parameter
file only when given: left empty, the file's value holds, so a parameter file of your own (params_file:=...)
is never silently overridden by a launch default. The node is a lifecycle node that configures and activates
itself (parameter autostart); `ros2 lifecycle set /<namespace>/pose_estimation deactivate` frees its model.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'openpose_ros'
EXECUTABLE = 'pose_estimation_node'
NODE_NAME = 'pose_estimation'
PARAMS_FILE = os.path.join('config', 'pose_estimation.yaml')  # in the package's share folder
TRUE_WORDS = ('true', '1', 'yes', 'on')

# Launch argument -> (node parameter, description). Empty (the default) keeps the parameter file's value.
PARAMETER_ARGUMENTS = {
    'weights': ('weights', "model folder, checkpoint file, or 'download' (default: the parameter file's)"),
    'device': ('device', "auto, cpu, cuda or cuda:N (default: the parameter file's)"),
    'backend': ('backend', "auto, torch, onnx or int8 (default: the parameter file's)"),
    'input_type': ('input_type', "raw or compressed (compressed subscribes <camera_topic>/compressed; "
                   "default: the parameter file's)"),
}


def launch_arguments():
    """The DeclareLaunchArgument actions of this file (the rviz launch file declares the same)."""
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument('camera_topic', default_value='/camera/image_raw',
                              description="the camera's sensor_msgs/Image topic (the node's 'image')"),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and of its poses and image_annotated topics'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, PARAMS_FILE),
                              description='parameter file of the node'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (true when playing a bag with --clock)'),
        DeclareLaunchArgument('log_level', default_value='info', description='node log level'),
        DeclareLaunchArgument('use_depth', default_value='false',
                              description='lift the poses to 3D with an aligned depth image (poses_3d, '
                                          'skeleton_markers)'),
        DeclareLaunchArgument('depth_topic', default_value='/camera/aligned_depth_to_color/image_raw',
                              description="the depth image aligned to the colour image (the node's "
                                          "'depth/image'), with use_depth"),
        DeclareLaunchArgument('depth_info_topic', default_value='/camera/aligned_depth_to_color/camera_info',
                              description="that depth image's CameraInfo (the node's 'depth/camera_info')"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value='', description=description)
                  for name, (_, description) in PARAMETER_ARGUMENTS.items()]
    return arguments


def node_actions(context):
    """The node, with the launch arguments' values (OpaqueFunction: empty arguments are left out)."""
    overrides = {}
    for argument, (parameter, _) in PARAMETER_ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = ParameterValue(value, value_type=str)
    use_sim_time = LaunchConfiguration('use_sim_time').perform(context).strip().lower()
    overrides['use_sim_time'] = use_sim_time in TRUE_WORDS
    overrides['use_depth'] = LaunchConfiguration('use_depth').perform(context).strip().lower() in TRUE_WORDS
    return [LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration('namespace').perform(context),
        parameters=[LaunchConfiguration('params_file').perform(context), overrides],
        remappings=[('image', LaunchConfiguration('camera_topic').perform(context)),
                    ('depth/image', LaunchConfiguration('depth_topic').perform(context)),
                    ('depth/camera_info', LaunchConfiguration('depth_info_topic').perform(context))],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level').perform(context)],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription(launch_arguments() + [OpaqueFunction(function=node_actions)])
