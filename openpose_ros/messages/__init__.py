"""The messages the node and the bag tools publish, built without rclpy: image conversions, pose
arrays, 3D poses, skeleton markers, REP-155 bodies, and the `rosbags` typestore for bags."""
