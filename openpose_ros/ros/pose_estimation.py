"""pose_estimation_node: multi-person 2D poses from a camera topic (a ROS 2 lifecycle node).

    ros2 run openpose_ros pose_estimation_node --ros-args --params-file config/pose_estimation.yaml \\
        -p weights:=/path/to/model -r image:=/camera/image_raw
    python -m openpose_ros.ros.node --ros-args ...          (the same, from a source tree)

Subscribes `image` (sensor_msgs/Image) or, with input_type:=compressed, `<image>/compressed`
(sensor_msgs/CompressedImage); publishes `poses` (openpose_ros/Pose2DArray), `image_annotated`
(sensor_msgs/Image, optional and rate-limited), both with the input image's header, and `/diagnostics`.

Only the newest frame is processed, by a worker thread: when frames arrive faster than inference, the ones
that arrive while it is busy replace each other, so what is published is always recent. Tracking and smoothing
run on the images' stamps. The parameters are declared from openpose_ros.ros.params.

Lifecycle: with autostart (the default) the node configures (loads the model) and activates (subscribes) by
itself. Deactivating it (`ros2 lifecycle set /pose_estimation deactivate`) unsubscribes and frees the model;
activating it again reloads the model. Exit status: 0 after Ctrl-C or a shutdown, 1 when the model cannot be
loaded at start (the message says why), 2 for invalid parameters.
"""
import functools
import logging
import shutil
import sys
import tempfile
import threading
import time
import traceback

import rclpy
import rclpy.exceptions
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from openpose_ros.msg import Pose2DArray
from openpose_ros.ros.conversions import bgr_to_image_msg, compressed_msg_to_bgr, image_msg_to_bgr, poses_to_msg
from openpose_ros.ros.model import ModelError, apply_settings, load_model, release_memory
from openpose_ros.ros.params import (BY_NAME, DECODER_PARAMS, PARAMS, SMOOTHING_PARAMS, TRACKER_PARAMS, check,
                                     check_all)
from openpose_ros.ros.worker import FrameStats, LatestFrameWorker

NODE_NAME = 'pose_estimation'
REJECTION_WARNING_PERIOD = 5.0  # seconds between two warnings about the same kind of bad message
STATS_WINDOW = 5.0              # seconds of samples behind the diagnostics' rates and latencies
EXIT_MODEL_ERROR, EXIT_PARAMETER_ERROR = 1, 2
_PARAMETER_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_LEARNER_PARAMS = set(DECODER_PARAMS) | set(SMOOTHING_PARAMS) | set(TRACKER_PARAMS)


def descriptor(param):
    """The ROS ParameterDescriptor of a `params.Param`."""
    result = ParameterDescriptor(name=param.name, type=_PARAMETER_TYPES[param.type],
                                 description=param.description, additional_constraints=param.constraints,
                                 read_only=not param.dynamic)
    if param.low is not None and param.type is float:
        result.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high),
                                                          step=0.0)]
    elif param.low is not None and param.type is int:
        result.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=1)]
    return result


def stamp_seconds(stamp):
    return stamp.sec + stamp.nanosec * 1e-9


class _RejectionLog:
    """Warns about bad messages at most once per REJECTION_WARNING_PERIOD per kind, counting the ones in between."""

    def __init__(self, logger):
        self._logger = logger
        self._last = {}  # kind -> (monotonic time of the last warning, messages not warned about since)

    def warn(self, kind, text):
        now = time.monotonic()
        last, quiet = self._last.get(kind, (None, 0))
        if last is not None and now - last < REJECTION_WARNING_PERIOD:
            self._last[kind] = (last, quiet + 1)
            return
        more = f' ({quiet} more of this kind in the last {now - last:.0f} s)' if quiet else ''
        self._logger.warning(f'rejected an input frame: {text}{more}')
        if len(self._last) > 64:
            self._last.clear()
        self._last[kind] = (now, 0)


def _logged(transition):
    """rclpy turns an exception in a transition callback into ERROR without a word: say what went wrong."""
    @functools.wraps(transition)
    def wrapper(self, state):
        try:
            return transition(self, state)
        except Exception as error:
            self.get_logger().error(f'{transition.__name__} failed: {type(error).__name__}: {error}\n'
                                    + traceback.format_exc())
            return TransitionCallbackReturn.ERROR
    return wrapper


class PoseEstimationNode(LifecycleNode):
    """The pose estimation node (see the module documentation). `exit_code` says why it could not start."""

    def __init__(self, node_name=NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.exit_code = 0
        self._settings = {}
        self._model = None
        self._model_lock = threading.Lock()
        self._temp_dir = tempfile.mkdtemp(prefix='openpose_ros_node_')
        self._worker = None
        self._subscription = None
        self._poses_publisher = self._annotated_publisher = None
        self._stats = FrameStats(STATS_WINDOW)
        self._rejections = _RejectionLog(self.get_logger())
        self._last_stamp = None
        self._last_annotated = None
        self._activated_at = None
        self._input_topic = ''
        self._state = 'unconfigured'
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for param in PARAMS:  # each value is checked by _on_set_parameters as it is declared
            self.declare_parameter(param.name, param.default, descriptor(param))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # On the steady clock: with use_sim_time, a paused bag must not stop the diagnostics (nor the dead-topic
        # warning).
        self._diagnostics_timer = self.create_timer(self._settings['diagnostics_period'], self._publish_diagnostics,
                                                    clock=Clock(clock_type=ClockType.STEADY_TIME))

    # --- parameters ----------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters):
        updates = {}
        for parameter in parameters:
            if parameter.name not in BY_NAME:
                continue  # use_sim_time, QoS overrides: rclpy's own
            reason = check(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            updates[parameter.name] = parameter.value
        settings = {**self._settings, **updates}
        with self._model_lock:
            if self._model is not None and _LEARNER_PARAMS & set(updates):
                try:
                    self._check_learner_settings(settings)
                    apply_settings(self._model.learner, settings)
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
            self._settings = settings
        if updates and self._state != 'unconfigured':
            self.get_logger().info('parameters changed: ' + ', '.join(f'{k}={v!r}' for k, v in updates.items()))
        return SetParametersResult(successful=True)

    @staticmethod
    def _check_learner_settings(settings):
        """Raises ValueError when the pipeline would refuse these values (before any is applied)."""
        from openpose_ros.decode import DecoderConfig
        from openpose_ros.smoothing import OneEuroSettings
        DecoderConfig(**{field: settings[name] for name, field in DECODER_PARAMS.items()})
        OneEuroSettings(**{field: float(settings[name]) for name, field in SMOOTHING_PARAMS.items()})

    # --- lifecycle -----------------------------------------------------------------------------------------
    @_logged
    def on_configure(self, state):
        reasons = check_all(self._settings)
        if reasons:
            self.get_logger().error('invalid parameters: ' + '; '.join(reasons))
            self.exit_code = EXIT_PARAMETER_ERROR
            return TransitionCallbackReturn.FAILURE
        if not self._load():
            return TransitionCallbackReturn.FAILURE
        self._poses_publisher = self.create_lifecycle_publisher(Pose2DArray, 'poses', _output_qos(10))
        self._annotated_publisher = self.create_lifecycle_publisher(Image, 'image_annotated', _output_qos(1))
        self._state = 'inactive'
        return super().on_configure(state)

    @_logged
    def on_activate(self, state):
        if self._model is None and not self._load():
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # activates the publishers
        self._last_stamp = None
        self._worker = LatestFrameWorker(self._process, name='pose-estimation', on_error=self._on_worker_error)
        self._worker.start()
        settings = self._settings
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=settings['qos_depth'],
                         reliability=(ReliabilityPolicy.RELIABLE if settings['qos_reliability'] == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT),
                         durability=DurabilityPolicy.VOLATILE)
        if settings['input_type'] == 'compressed':
            self._input_topic = self._compressed_topic()
            self._subscription = self.create_subscription(CompressedImage, self._input_topic, self._on_image, qos)
        else:
            self._subscription = self.create_subscription(Image, 'image', self._on_image, qos)
            self._input_topic = self._subscription.topic_name
        self._activated_at = time.monotonic()
        self._state = 'active'
        self.get_logger().info(
            f'active: {settings["input_type"]} images on {self._input_topic} ({settings["qos_reliability"]}, '
            f'depth {settings["qos_depth"]}) -> {self._poses_publisher.topic_name}, '
            f'{self._annotated_publisher.topic_name}; model {self._model.weights} on {self._model.backend}')
        return result

    @_logged
    def on_deactivate(self, state):
        self._stop_processing()
        self._unload()
        self._state = 'inactive'
        self.get_logger().info('inactive: unsubscribed, model unloaded')
        return super().on_deactivate(state)

    @_logged
    def on_cleanup(self, state):
        self._stop_processing()
        self._unload()
        self._destroy_publishers()
        self._state = 'unconfigured'
        return super().on_cleanup(state)

    @_logged
    def on_shutdown(self, state):
        self._stop_processing()
        self._unload()
        self._destroy_publishers()
        self._state = 'finalized'
        return super().on_shutdown(state)

    def on_error(self, state):
        self._stop_processing()
        self._unload()
        self._destroy_publishers()
        self._state = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def _load(self):
        settings = dict(self._settings)
        self.get_logger().info(f'loading the model {settings["weights"]} (device {settings["device"]}, backend '
                               f'{settings["backend"]})')
        started = time.monotonic()
        try:
            model = load_model(settings, self._temp_dir)
        except ModelError as error:
            self.get_logger().error(str(error))
            self.exit_code = EXIT_MODEL_ERROR
            return False
        with self._model_lock:
            apply_settings(model.learner, self._settings)  # parameters changed while loading
            self._model = model
        self.get_logger().info(f'model loaded in {time.monotonic() - started:.1f} s: {model.weights}, backend '
                               f'{model.backend} ({model.reason}), base height {model.learner.base_height}')
        return True

    def _unload(self):
        with self._model_lock:
            loaded, self._model = self._model is not None, None
        if loaded:
            release_memory()

    def _stop_processing(self):
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._worker is not None:
            self._stats.on_dropped(self._worker.stop())
            self._worker = None

    def _destroy_publishers(self):
        for publisher in (self._poses_publisher, self._annotated_publisher):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._poses_publisher = self._annotated_publisher = None

    def _compressed_topic(self):
        """image_transport's name: '<image>/compressed' after remapping 'image'; unless 'image/compressed'
        itself is remapped."""
        remapped = self.resolve_topic_name('image/compressed')
        if remapped != self.resolve_topic_name('image/compressed', only_expand=True):
            return remapped
        return self.resolve_topic_name('image').rstrip('/') + '/compressed'

    def destroy_node(self):
        self._stop_processing()
        self._unload()
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        return super().destroy_node()

    # --- frames --------------------------------------------------------------------------------------------
    def _on_image(self, msg):
        self._stats.on_received()
        worker = self._worker
        if worker is not None and worker.offer((msg, time.monotonic())):
            self._stats.on_dropped()

    def _on_worker_error(self, error):
        self._stats.on_failed()
        self.get_logger().error(f'processing a frame failed: {type(error).__name__}: {error}',
                                throttle_duration_sec=REJECTION_WARNING_PERIOD)

    def _process(self, item):
        msg, received = item
        compressed = isinstance(msg, CompressedImage)
        try:
            image = compressed_msg_to_bgr(msg) if compressed else image_msg_to_bgr(msg)
        except ValueError as error:
            self._stats.on_rejected(str(error))
            kind = ('compressed ' if compressed else '') + str(error).split(':')[0].split(' (')[0]
            self._rejections.warn(kind, f'{error} (frame_id {msg.header.frame_id!r}, stamp '
                                        f'{stamp_seconds(msg.header.stamp):.3f})')
            return
        with self._model_lock:
            model, settings = self._model, self._settings
        if model is None:
            return
        stamp = stamp_seconds(msg.header.stamp)
        stamped = stamp > 0
        if not stamped:  # a driver that does not stamp its images: the time of arrival
            stamp = self.get_clock().now().nanoseconds * 1e-9
        if self._last_stamp is not None and stamp < self._last_stamp:
            self.get_logger().info(f'image time went back by {self._last_stamp - stamp:.3f} s (a bag restarted?): '
                                   'restarting tracking and smoothing')
            model.learner.reset()
        self._last_stamp = stamp
        started = time.perf_counter()
        poses = model.learner.infer(image, settings['upsample_ratio'], settings['track'], settings['smooth'], stamp)
        inference_ms = (time.perf_counter() - started) * 1e3
        poses = [pose for pose in poses if pose.confidence >= settings['min_pose_score']]
        self._poses_publisher.publish(poses_to_msg(poses, msg.header))
        if self._should_annotate(settings):
            from openpose_ros.pose import draw
            annotated = draw(image.copy(), poses, track=settings['track'])
            self._annotated_publisher.publish(bgr_to_image_msg(annotated, msg.header))
        now = self.get_clock().now().nanoseconds * 1e-9  # 0 with use_sim_time before the first /clock
        age_ms = (now - stamp) * 1e3 if stamped and now > 0 else None
        self._stats.on_processed((time.monotonic() - received) * 1e3, age_ms, inference_ms, len(poses))

    def _should_annotate(self, settings):
        publisher = self._annotated_publisher
        if not settings['publish_annotated'] or publisher is None or publisher.get_subscription_count() == 0:
            return False
        now = time.monotonic()
        rate = settings['annotated_max_rate']
        if rate > 0 and self._last_annotated is not None and now - self._last_annotated < 1.0 / rate:
            return False
        self._last_annotated = now
        return True

    # --- diagnostics ---------------------------------------------------------------------------------------
    def diagnostic_status(self):
        """The node's DiagnosticStatus now: level, a one-line summary, and the figures as key/values."""
        figures = self._stats.snapshot()
        settings = self._settings
        model = self._model
        level, message = DiagnosticStatus.OK, self._state
        if self._state == 'active':
            silent = figures['seconds_since_last_frame']
            if silent is None:
                silent = time.monotonic() - self._activated_at
                never = True
            else:
                never = False
            if silent > settings['stale_timeout']:
                level = DiagnosticStatus.WARN
                message = (f'no image {"received " if never else ""}on {self._input_topic} for {silent:.1f} s'
                           f'{" since activation" if never else ""}: is the camera publishing (topic name, QoS)?')
            elif figures['rejected_in_window']:
                level = DiagnosticStatus.WARN
                message = (f'{figures["rejected_in_window"]} input frame(s) rejected in the last '
                           f'{STATS_WINDOW:g} s: {figures["last_rejection"]}')
            else:
                message = (f'processing {figures["processing_rate_hz"]:.1f} Hz of {figures["input_rate_hz"]:.1f} Hz '
                           f'received' + (f', latency {figures["latency_ms_mean"]:.0f} ms'
                                          if figures['latency_ms_mean'] is not None else ''))
        elif self._state == 'inactive':
            message = 'inactive: not subscribed, model unloaded'
        values = {
            'state': self._state,
            'input_topic': self._input_topic,
            'input_type': settings['input_type'],
            'model': str(model.weights) if model else settings['weights'],
            'model_loaded': model is not None,
            'backend': model.backend if model else '',
            'device': model.learner.device if model else settings['device'],
            'base_height': model.learner.base_height if model else settings['base_height'],
        }
        values.update(figures)
        status = DiagnosticStatus(level=level, name=self.diagnostic_name, message=message,
                                  hardware_id=str(values['device']))
        status.values = [KeyValue(key=key, value=_format(value)) for key, value in values.items()]
        return status

    @property
    def diagnostic_name(self):
        """'<namespace>/<node name>: pose estimation', without the leading slash."""
        return self.get_fully_qualified_name().lstrip('/') + ': pose estimation'

    def _publish_diagnostics(self):
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostic_status()]
        self._diagnostics_publisher.publish(array)


def _format(value):
    if value is None:
        return ''
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def _output_qos(depth):
    # Reliable publishers serve both reliable and best-effort subscribers.
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def main(args=None):
    """Runs the node until Ctrl-C or shutdown. Returns the exit status (see the module documentation)."""
    logging.basicConfig(level=logging.WARNING, format='[%(levelname)s] [%(name)s]: %(message)s')
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = PoseEstimationNode()
        except (rclpy.exceptions.InvalidParameterValueException,
                rclpy.exceptions.InvalidParameterTypeException) as error:
            rclpy.logging.get_logger(NODE_NAME).error(f'invalid parameter: {error}')
            return EXIT_PARAMETER_ERROR
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return node.exit_code or EXIT_MODEL_ERROR
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                return node.exit_code or EXIT_MODEL_ERROR
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
