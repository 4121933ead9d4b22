"""The executables over the library: `infer`, `train`, `evaluate`, `video_to_bag` (short main()s; their
shared argument helpers are openpose_ros.command_line). `bag_eval` is openpose_ros.bag.command."""
