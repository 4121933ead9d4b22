"""From an image to poses: input checks (image), the network input (preprocess), the maps of a backend
(estimator), keypoints and their grouping (decode), and 3D from depth (lifting). Free of torch and ROS."""
