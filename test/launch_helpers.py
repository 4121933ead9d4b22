"""Helpers of the launch tests (launch_testing): a listener that records topics and reads parameters in this
test's DDS domain, the package's launch files as ament_index finds them, and the video publisher as a process."""
import os
import time

from ament_index_python.packages import get_package_share_directory
from launch.actions import GroupAction, IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource

from conftest import PHOTO

PACKAGE = 'openpose_ros'
TEST_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'models', 'tiny_coco')


def package_launch_file(name):
    """A launch file of the package where `ros2 launch openpose_ros <name>` finds it."""
    return os.path.join(get_package_share_directory(PACKAGE), 'launch', name)


def in_domain(domain_id, actions):
    """The actions with ROS_DOMAIN_ID and localhost discovery set for their processes only (a scoped group)."""
    return GroupAction([SetEnvironmentVariable('ROS_DOMAIN_ID', str(domain_id)),
                        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'), *actions],
                       scoped=True)


def include_launch_file(name, **arguments):
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(package_launch_file(name)),
                                    launch_arguments=list(arguments.items()))


def video_publisher(topic, *options, source=PHOTO, name='video_publisher'):
    """The package's video_publisher executable (what `ros2 run openpose_ros video_publisher` starts), found
    through the ament index and started directly, so that launch's shutdown signals reach it: `source` (a real
    photo of two people) on `topic`."""
    from launch_ros.actions import Node
    return Node(package=PACKAGE, executable='video_publisher', name=name, output='screen',
                arguments=[str(source), '--topic', topic, '--no-stamps', *options])


class Listener:
    """An rclpy node of its own context in `domain_id` that records the messages of topics."""

    def __init__(self, domain_id):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f'launch_test_listener_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}

    def close(self):
        import rclpy
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def record(self, topic, kind, reliable=True):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.received[topic] = []
        self.node.create_subscription(kind, topic, self.received[topic].append, qos)
        return self.received[topic]

    def wait_for(self, topic, count, timeout):
        """The messages of `topic` once `count` have arrived; fails after `timeout` s saying how many did."""
        deadline = time.monotonic() + timeout
        while len(self.received[topic]) < count and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        received = self.received[topic]
        assert len(received) >= count, f'{len(received)} of {count} messages on {topic} in {timeout:g} s'
        return list(received)

    def parameters(self, node_name, names, timeout=30.0):
        """{name: value} of a node's parameters, through its get_parameters service."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        client = self.node.create_client(GetParameters, f'{node_name}/get_parameters')
        assert client.wait_for_service(timeout_sec=timeout), f'no {node_name}/get_parameters service'
        future = client.call_async(GetParameters.Request(names=list(names)))
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f'{node_name}/get_parameters did not answer'
        return {name: parameter_value_to_python(value) for name, value in zip(names, future.result().values)}


def stamps_and_frames(messages):
    return [((msg.header.stamp.sec, msg.header.stamp.nanosec), msg.header.frame_id) for msg in messages]


class RosLaunch:
    """`ros2 launch openpose_ros <file> <arguments>` in a session of its own, as a terminal starts it: its output
    in a file; interrupt() sends SIGINT to the whole process group, as a terminal's Ctrl-C does."""

    def __init__(self, launch_file, arguments, env, cwd, log_path):
        import subprocess
        self.log_path = log_path
        self._log = open(log_path, 'w', encoding='utf-8')
        self.process = subprocess.Popen(['ros2', 'launch', PACKAGE, launch_file, *arguments], env=env, cwd=cwd,
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def output(self):
        with open(self.log_path, encoding='utf-8', errors='replace') as stream:
            return stream.read()

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f'ros2 launch ended ({self.process.returncode}):\n{self.output()}'
            assert time.monotonic() < deadline, f'no {text!r} after {timeout:g} s:\n{self.output()}'
            time.sleep(0.2)

    def interrupt(self, timeout=60.0):
        """Ctrl-C: SIGINT to the process group; the exit status (None if it hangs: then it is killed)."""
        import signal
        import subprocess
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.stop()

    def stop(self):
        """Kills whatever is left of the process group."""
        import signal
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._log.close()
