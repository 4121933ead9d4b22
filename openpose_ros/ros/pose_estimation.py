"""PoseEstimationNode: the ROS 2 lifecycle node behind pose_estimation_node (openpose_ros.ros.node starts it).

Only the newest frame is processed, by a worker thread: when frames arrive faster than inference, the ones
that arrive while it is busy replace each other, so what is published is always recent. Tracking and smoothing
run on the images' stamps. The parameters are declared from openpose_ros.parameters. The diagnostics come from
a thread of their own (on the steady clock), so that they go on while a lifecycle transition waits for a frame or
loads a model on the executor's thread.

Lifecycle: with autostart (the default) the node configures (loads the model) and activates (subscribes) by
itself. Deactivating it unsubscribes and frees the model (after the frame in progress, waiting at most
STOP_TIMEOUT: a longer frame's result is dropped); activating it again reloads the model.
"""
import functools
import logging
import os
import re
import shutil
import signal
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
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from openpose_ros.inference.image import ImageRejected
from openpose_ros.messages.conversions import bgr_to_image_msg, compressed_msg_to_bgr, image_msg_to_bgr, poses_to_msg
from openpose_ros.msg import Pose2DArray
from openpose_ros.parameters import (BY_NAME, DECODER_PARAMS, LEARNER_ATTRIBUTE_PARAMS, PARAMS, SMOOTHING_PARAMS,
                                     TRACKER_PARAMS, check, check_all)
from openpose_ros.ros.worker import FrameStats, LatestFrameWorker
from openpose_ros.runtime.configured_model import (ModelError, apply_settings, depth_settings, load_model,
                                                   release_memory, stream_settings)

NODE_NAME = 'pose_estimation'
WORKER_THREAD = 'pose-estimation'
REJECTION_WARNING_PERIOD = 5.0  # seconds between two log lines about frames refused or failed for the same cause
STATS_WINDOW = 5.0              # seconds of samples behind the diagnostics' rates, latencies and levels
STOP_TIMEOUT = 1.0              # seconds deactivate and shutdown wait for the frame in progress
ECHO_LIMIT = 64                 # printable characters of a string from an input message that logs repeat
EXIT_MODEL_ERROR, EXIT_PARAMETER_ERROR = 1, 2
_PARAMETER_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_LEARNER_PARAMS = set(DECODER_PARAMS) | set(SMOOTHING_PARAMS) | set(TRACKER_PARAMS) | set(LEARNER_ATTRIBUTE_PARAMS)


def descriptor(param):
    """The ROS ParameterDescriptor of a `params.Param`."""
    # A double also takes a whole number (`-p annotated_max_rate:=0`, `ros2 param set ... min_pose_score 0`):
    # rclpy then leaves the type and range to the node's own check (params.Param.check), which allows both.
    result = ParameterDescriptor(name=param.name, type=_PARAMETER_TYPES[param.type],
                                 description=param.description, additional_constraints=param.constraints,
                                 read_only=not param.dynamic, dynamic_typing=param.type is float)
    if param.low is not None and param.type is float:
        result.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high),
                                                          step=0.0)]
    elif param.low is not None and param.type is int:
        result.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=1)]
    return result


def stamp_seconds(stamp):
    """A builtin_interfaces/Time as seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def clip(text, limit=ECHO_LIMIT):
    """`text` with line breaks and tabs as spaces and other unprintable characters as '?', cut to `limit`
    characters ('...' marks a cut)."""
    text = ''.join(character if character.isprintable() else ' ' if character.isspace() else '?'
                   for character in str(text)[:limit + 1])
    return text if len(text) <= limit else text[:limit - 3] + '...'


_QUOTED = re.compile(r'\'[^\']*\'|"[^"]*"')
_NUMBER = re.compile(r'\d+')


def rejection_cause(error):
    """The cause of a refused message, for counting and rate-limiting: the first clause of the error without the
    values it quotes from the message and without numbers ('unsupported image encoding', 'image step N is
    smaller than a row of N bgr8 pixels'), so that a stream of different bad values is one cause."""
    first = str(error).split(':')[0].split(' (')[0]
    return clip(' '.join(_NUMBER.sub('N', _QUOTED.sub('', first)).split()))


def echo(error):
    """The error's text for logs and diagnostics, each value it quotes from the message cut to ECHO_LIMIT."""
    text = _QUOTED.sub(lambda quoted: repr(clip(quoted.group()[1:-1])), str(error))
    return clip(text, 4 * ECHO_LIMIT)


class _RateLimitedLog:
    """Logs a problem at most once per REJECTION_WARNING_PERIOD per cause, counting the ones in between."""

    def __init__(self, log, what):
        self._log = log      # e.g. the logger's warning method
        self._what = what    # e.g. 'rejected an input frame'
        self._last = {}      # cause -> (monotonic time of the last line, problems not logged since)

    def __call__(self, cause, text):
        now = time.monotonic()
        last, quiet = self._last.get(cause, (None, 0))
        if last is not None and now - last < REJECTION_WARNING_PERIOD:
            self._last[cause] = (last, quiet + 1)
            return
        more = f' ({quiet} more for this cause in the last {now - last:.0f} s)' if quiet else ''
        self._log(f'{self._what}: {text}{more}')
        if len(self._last) > 64:
            self._last.clear()
        self._last[cause] = (now, 0)


class _Activation:
    """One span from activate to deactivate: a frame taken during it publishes only while it is open."""

    def __init__(self):
        self.open = True


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
        # One thread for the node's life (started at the first activation): a frame still running after
        # deactivate finishes there, its result dropped, and activations do not pile up threads.
        self._worker = LatestFrameWorker(self._process, name=WORKER_THREAD, on_error=self._on_worker_error)
        self._activation = None
        self._output_lock = threading.Lock()  # publishing vs. closing an activation
        self._subscription = None
        self._poses_publisher = self._annotated_publisher = None
        self._hri = None  # REP-155 body topics (parameter hri)
        self._stats = FrameStats(STATS_WINDOW)
        self._rejection_log = _RateLimitedLog(self.get_logger().warning, 'rejected an input frame')
        self._failure_log = _RateLimitedLog(self.get_logger().error, 'processing a frame failed')
        self._last_annotated = None
        self._activated_at = None
        self._input_topic = ''
        self._state = 'unconfigured'
        self._init_depth()
        self._diagnostics_stop = threading.Event()
        self._diagnostics_thread = None  # rclpy destroys a node whose parameters were refused: before it starts
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for param in PARAMS:  # each value is checked by _on_set_parameters as it is declared
            self.declare_parameter(param.name, param.default, descriptor(param))
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Not an executor timer: published while a transition callback waits or loads (rclpy publishers may be
        # used from any thread), and on the steady clock: with use_sim_time, a paused bag must not stop them.
        self._diagnostics_thread = threading.Thread(target=self._publish_diagnostics_until_stopped,
                                                    name='diagnostics', daemon=True)
        self._diagnostics_thread.start()

    # --- parameters ----------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters):
        updates = {}
        for parameter in parameters:
            if parameter.name not in BY_NAME:
                continue  # use_sim_time, QoS overrides: rclpy's own
            reason = check(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            updates[parameter.name] = BY_NAME[parameter.name].convert(parameter.value)
        settings = {**self._settings, **updates}
        with self._model_lock:
            if self._model is not None and _LEARNER_PARAMS & set(updates):
                try:
                    self._check_learner_settings(settings)
                    apply_settings(self._model.learner, settings)
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
            self._settings = settings
        self._on_depth_settings(updates)
        if updates and self._state != 'unconfigured':
            self.get_logger().info('parameters changed: ' + ', '.join(f'{k}={v!r}' for k, v in updates.items()))
        return SetParametersResult(successful=True)

    @staticmethod
    def _check_learner_settings(settings):
        """Raises ValueError when the pipeline would refuse these values (before any is applied)."""
        from openpose_ros.inference.decode import DecoderConfig
        from openpose_ros.tracking.smoothing import OneEuroSettings
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
        self._poses_publisher = self.create_lifecycle_publisher(Pose2DArray, 'poses', output_qos(10))
        self._annotated_publisher = self.create_lifecycle_publisher(Image, 'image_annotated', output_qos(1))
        self._create_hri()
        self._create_depth_publishers()
        self._state = 'inactive'
        return super().on_configure(state)

    @_logged
    def on_activate(self, state):
        if self._model is None and not self._load():
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # activates the publishers
        self._model.learner.stream.last_stamp = None  # a new run: its first stamp is no step back
        self._activation = _Activation()
        self._worker.start()
        settings = self._settings
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=settings['qos_depth'],
                         reliability=(ReliabilityPolicy.RELIABLE if settings['qos_reliability'] == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT),
                         durability=DurabilityPolicy.VOLATILE)
        if settings['use_depth']:
            self._subscribe_with_depth(qos)
        elif settings['input_type'] == 'compressed':
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
        """Unsubscribes and closes the activation; waits at most STOP_TIMEOUT for the frame in progress."""
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self._unsubscribe_depth()
        with self._output_lock:
            if self._activation is not None:
                self._activation.open = False
            self._activation = None
            self._end_hri_bodies()
        self._stats.on_dropped(self._worker.discard())
        if not self._worker.wait_idle(STOP_TIMEOUT):
            self.get_logger().info(f'the frame in progress goes on after {STOP_TIMEOUT:g} s: its result is dropped')

    def _destroy_publishers(self):
        for publisher in (self._poses_publisher, self._annotated_publisher):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._poses_publisher = self._annotated_publisher = None
        self._destroy_hri()
        self._destroy_depth_publishers()

    def _compressed_topic(self):
        """image_transport's name: '<image>/compressed' after remapping 'image'; unless 'image/compressed'
        itself is remapped."""
        remapped = self.resolve_topic_name('image/compressed')
        if remapped != self.resolve_topic_name('image/compressed', only_expand=True):
            return remapped
        return self.resolve_topic_name('image').rstrip('/') + '/compressed'

    def destroy_node(self):
        self._diagnostics_stop.set()
        if self._diagnostics_thread is not None:
            self._diagnostics_thread.join()
        self._stop_processing()
        self._worker.stop(timeout=0)
        self._unload()
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        return super().destroy_node()

    # --- frames --------------------------------------------------------------------------------------------
    def _on_image(self, msg):
        self._stats.on_received()
        activation = self._activation
        if activation is not None and self._worker.offer((msg, time.monotonic(), activation)):
            self._stats.on_dropped()

    def _on_worker_error(self, error):
        cause, reason = type(error).__name__, echo(f'{type(error).__name__}: {error}')
        self._stats.on_failed(cause, reason)
        self._failure_log(cause, reason)

    def _publish(self, activation, publisher, msg):
        """Publishes unless the activation was closed meanwhile (deactivate, shutdown): then drops `msg`."""
        with self._output_lock:
            if not activation.open:
                return False
            publisher.publish(msg)
            return True

    def _process(self, item):
        msg, received, activation = item
        compressed = isinstance(msg, CompressedImage)
        try:
            image = compressed_msg_to_bgr(msg) if compressed else image_msg_to_bgr(msg)
        except ValueError as error:
            self._reject(msg, compressed, error)
            return
        with self._model_lock:
            model, settings = self._model, self._settings
        if model is None:
            return
        stamp = stamp_seconds(msg.header.stamp)
        stamped = stamp > 0
        if not stamped:  # a driver that does not stamp its images: the time of arrival
            stamp = self.get_clock().now().nanoseconds * 1e-9
        started = time.perf_counter()
        try:
            frame = model.learner.stream.process(image, stamp, stream_settings(settings))
        except ImageRejected as error:  # e.g. beyond max_aspect_ratio
            self._reject(msg, compressed, error)
            return
        inference_ms = (time.perf_counter() - started) * 1e3
        if frame.restarted:
            self.get_logger().info('image time went back (a bag restarted?): restarted tracking and smoothing')
            with self._output_lock:
                self._end_hri_bodies()
        poses = frame.poses
        if not self._publish(activation, self._poses_publisher, poses_to_msg(poses, msg.header)):
            return
        self._publish_hri(activation, poses, msg.header, image.shape, frame.live_track_ids)
        if self._should_annotate(settings):
            from openpose_ros.pose import draw
            annotated = draw(image.copy(), poses, track=settings['track'])
            self._publish(activation, self._annotated_publisher, bgr_to_image_msg(annotated, msg.header))
        if settings['use_depth']:
            self._publish_3d(activation, msg, image.shape, poses, settings)
        now = self.get_clock().now().nanoseconds * 1e-9  # 0 with use_sim_time before the first /clock
        age_ms = (now - stamp) * 1e3 if stamped and now > 0 else None
        self._stats.on_processed((time.monotonic() - received) * 1e3, age_ms, inference_ms, len(poses))

    def _reject(self, msg, compressed, error):
        """Counts a refused frame by its cause and warns about it (rate-limited per cause)."""
        cause, reason = ('compressed ' if compressed else '') + rejection_cause(error), echo(error)
        self._stats.on_rejected(cause, reason)
        self._rejection_log(cause, f'{reason} (frame_id {clip(msg.header.frame_id)!r}, stamp '
                                   f'{stamp_seconds(msg.header.stamp):.3f})')

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

    # --- REP-155 (ROS4HRI) bodies (parameter hri) ------------------------------------------------------------
    def _create_hri(self):
        if self._settings['hri'] and self._hri is None:
            from openpose_ros.ros.hri import HriBodies
            self._hri = HriBodies(self, output_qos(10))

    def _publish_hri(self, activation, poses, header, shape, alive_tracks):
        """The frame's bodies, unless the activation was closed meanwhile (untracked poses, id -1, are none)."""
        with self._output_lock:
            if self._hri is not None and activation.open:
                self._hri.publish(poses, header, shape[1], shape[0], alive_tracks)

    def _end_hri_bodies(self):
        """Destroys the bodies' publishers (call under the output lock): their tracks end with the tracker's."""
        if self._hri is not None:
            self._hri.end_all()

    def _destroy_hri(self):
        with self._output_lock:
            if self._hri is not None:
                self._hri.close()
            self._hri = None

    # --- depth: people in metres (use_depth) ---------------------------------------------------------------
    def _init_depth(self):
        self._depth_pairing = None
        self._poses_3d_publisher = self._markers_publisher = None
        self._depth_counts = {'frames_with_depth': 0, 'frames_without_depth': 0, 'depth_rejected': 0}

    def _create_depth_publishers(self):
        if not self._settings['use_depth']:
            return
        from openpose_ros.msg import Pose3DArray
        from visualization_msgs.msg import MarkerArray
        self._poses_3d_publisher = self.create_lifecycle_publisher(Pose3DArray, 'poses_3d', output_qos(10))
        self._markers_publisher = self.create_lifecycle_publisher(MarkerArray, 'skeleton_markers', output_qos(1))

    def _destroy_depth_publishers(self):
        for publisher in (self._poses_3d_publisher, self._markers_publisher):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._poses_3d_publisher = self._markers_publisher = None

    def _subscribe_with_depth(self, qos):
        """Colour (raw or compressed), depth and camera info through one synchroniser; every colour image still
        goes to the 2D path."""
        from openpose_ros.ros.depth import DepthPairing
        compressed = self._settings['input_type'] == 'compressed'
        self._depth_pairing = DepthPairing(self, CompressedImage if compressed else Image,
                                           self._compressed_topic() if compressed else 'image', qos,
                                           self._settings['depth_slop'], self._on_image)
        self._input_topic = self._depth_pairing.colour_topic

    def _unsubscribe_depth(self):
        if self._depth_pairing is not None:
            self._depth_pairing.destroy()
            self._depth_pairing = None

    def _on_depth_settings(self, updates):
        pairing = self._depth_pairing
        if pairing is not None and 'depth_slop' in updates:
            pairing.set_slop(updates['depth_slop'])

    def _publish_3d(self, activation, msg, image_shape, poses, settings):
        """Lifts the frame's poses with the depth image paired with it and publishes poses_3d and the markers;
        a frame without a matching depth image is counted and publishes nothing in 3D."""
        from openpose_ros.inference.lifting import Intrinsics
        from openpose_ros.inference.pipeline import lift
        from openpose_ros.messages.conversions import depth_msg_to_array, poses_3d_to_msg
        from openpose_ros.messages.markers import skeleton_markers
        pairing = self._depth_pairing
        match = pairing.match(msg.header.stamp) if pairing is not None else None
        if match is None:
            self._depth_counts['frames_without_depth'] += 1
            return
        depth_msg, info = match
        try:
            lifted = lift(poses, depth_msg_to_array(depth_msg), Intrinsics.from_camera_info(info), image_shape,
                          depth_settings(settings))
        except ValueError as error:
            self._depth_counts['depth_rejected'] += 1
            self._rejection_log('depth', f'depth not used: {echo(error)}')
            return
        self._depth_counts['frames_with_depth'] += 1
        header = type(msg.header)(stamp=msg.header.stamp, frame_id=info.header.frame_id)
        poses_3d = poses_3d_to_msg(poses, lifted, header)
        if self._publish(activation, self._poses_3d_publisher, poses_3d):
            self._publish(activation, self._markers_publisher, skeleton_markers(poses_3d))
        self._publish_body_frames(activation, poses, lifted, header)

    def _publish_body_frames(self, activation, poses, lifted, header):
        """REP-155's body_<id> TF frames at the tracked bodies' 3D centres (with hri and use_depth)."""
        centres = {pose.id: tuple(map(float, centre))
                   for pose, centre, valid in zip(poses, lifted.centers, lifted.center_valid) if valid and pose.id >= 0}
        with self._output_lock:
            if self._hri is not None and activation.open and centres:
                self._hri.publish_body_frames(centres, header)

    def _depth_figures(self):
        return dict(self._depth_counts) if self._settings.get('use_depth') else {}

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
            elif figures['rejected_in_window'] or figures['failed_in_window']:
                level, message = _problem_summary(figures)
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
            'frame_in_progress': self._worker.busy,
        }
        values.update(figures)
        values.update(self._depth_figures())
        status = DiagnosticStatus(level=level, name=self.diagnostic_name, message=message,
                                  hardware_id=str(values['device']))
        status.values = [KeyValue(key=key, value=_format(value)) for key, value in values.items()]
        return status

    @property
    def diagnostic_name(self):
        """'<namespace>/<node name>: pose estimation', without the leading slash."""
        return self.get_fully_qualified_name().lstrip('/') + ': pose estimation'

    def _publish_diagnostics_until_stopped(self):
        while not self._diagnostics_stop.wait(self._settings['diagnostics_period']):
            self._publish_diagnostics()

    def _publish_diagnostics(self):
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self.diagnostic_status()]
        self._diagnostics_publisher.publish(array)


def _problem_summary(figures):
    """(level, message) of a window with rejected or failed frames: ERROR when none of its frames was processed,
    else WARN."""
    processed = figures['processed_in_window']
    problems = [f'{figures[key + "_in_window"]} {key} ({figures["last_" + last]})'
                for key, last in (('failed', 'failure'), ('rejected', 'rejection')) if figures[key + '_in_window']]
    level = DiagnosticStatus.WARN if processed else DiagnosticStatus.ERROR
    return level, (f'in the last {STATS_WINDOW:g} s {processed or "no"} frame(s) processed, '
                   + ' and '.join(problems))


def _format(value):
    if value is None:
        return ''
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def output_qos(depth):
    """The QoS of the node's outputs: reliable, volatile, keeping the last `depth` messages."""
    # Reliable publishers serve both reliable and best-effort subscribers.
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class _Interrupted(BaseException):
    """The first SIGINT or SIGTERM while the node loads its model at start (a download may stall)."""


class _ShutdownSignals:
    """SIGINT and SIGTERM, once or repeated (a terminal's Ctrl-C under `ros2 launch` reaches the node twice), ask
    for one clean shutdown: the main loop sees `requested`. While `interrupting` (loading at start, outside the
    executor), the first one also raises _Interrupted in the main thread, which ends a blocking download."""

    def __init__(self):
        self.requested = threading.Event()
        self.interrupting = True
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number, frame):
        if self.requested.is_set():
            return
        self.requested.set()
        if self.interrupting:
            raise _Interrupted()


def run(args=None):
    """Runs the node until SIGINT, SIGTERM or shutdown. Returns the exit status (see openpose_ros.ros.node)."""
    status = _run(args)
    if any(thread.name == WORKER_THREAD and thread.is_alive() for thread in threading.enumerate()):
        # A frame still in inference: leave without running the runtime's exit-time destructors under it.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _run(args):
    logging.basicConfig(level=logging.WARNING, format='[%(levelname)s] [%(name)s]: %(message)s')
    # rclpy's own handlers would invalidate the context under a frame being published, and a second Ctrl-C
    # would kill the process while it shuts down.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    try:
        signals = _ShutdownSignals()
        node = PoseEstimationNode()
        if node.get_parameter('autostart').value and not (
                node.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and node.trigger_activate() == TransitionCallbackReturn.SUCCESS):
            return node.exit_code or EXIT_MODEL_ERROR
        signals.interrupting = False
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not signals.requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (rclpy.exceptions.InvalidParameterValueException,
            rclpy.exceptions.InvalidParameterTypeException) as error:
        rclpy.logging.get_logger(NODE_NAME).error(f'invalid parameter: {error}')
        return EXIT_PARAMETER_ERROR
    except _Interrupted:
        pass
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):  # more signals change nothing now
            signal.signal(number, signal.SIG_IGN)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
