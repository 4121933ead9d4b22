from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'openpose_ros'

# Console scripts for `pip install .`; a colcon build installs the same entry points as
# lib/openpose_ros/<name> for `ros2 run` (see CMakeLists.txt and test/test_packaging.py).
ENTRY_POINTS = {
    'infer': 'openpose_ros.cli.infer:main',
    'train': 'openpose_ros.cli.train:main',
    'evaluate': 'openpose_ros.cli.evaluate:main',
    'bag_eval': 'openpose_ros.bag.command:main',
    'pose_estimation_node': 'openpose_ros.ros.node:main',
    'video_publisher': 'openpose_ros.ros.video_publisher:main',
    'video_to_bag': 'openpose_ros.cli.video_to_bag:main',
}

setup(
    name=PACKAGE,
    version='0.1.0',
    description='Real-time multi-person 2D pose estimation (Lightweight OpenPose) for ROS 2 and plain Python',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        # The message definitions, for reading and writing bags without a ROS build (openpose_ros.bag).
        ('share/' + PACKAGE + '/msg', sorted(glob('msg/*.msg'))),
    ],
    install_requires=[
        'torch>=2.1',
        'numpy>=1.24',
        'opencv-python-headless>=4.8',
        'onnxruntime>=1.17',
        'openvino==2026.4.1',  # the OpenVINO backend (CPU: bf16, int8, fp32; Intel GPU/NPU)
        'onnx>=1.15',
        'onnxscript>=0.1',
        'pycocotools>=2.0.7',
        'tqdm>=4.60',
        'PyYAML>=6',  # the training configuration and ROS 2 parameter files (formats.yaml_file)
    ],
    extras_require={
        'train': ['tensorboard>=2.14'],
        'bags': ['rosbags>=0.10', 'matplotlib>=3.7', 'mcap>=1.6'],   # mcap: reading truncated mcap files
        'test': ['pytest>=7', 'hypothesis>=6.100', 'mypy>=1.10'],  # mypy: test/test_typing.py
    },
    entry_points={'console_scripts': [
        f'openpose-{name.replace("_", "-")} = {target}' for name, target in ENTRY_POINTS.items()]},
    zip_safe=False,
)
