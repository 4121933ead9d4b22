"""ROS 2 adapter: the only part of openpose_ros that uses rclpy and ROS messages.

`conversions` turns sensor_msgs images into numpy arrays and poses into openpose_ros messages.
"""
