"""The parameter schema of every node (data tables): one place for each parameter's type,
default, range and description (``core.param_spec.ParamSpec``). ``SCHEMAS[<node>]`` is what the
node declares, YAML files are validated against and runtime sets are checked with
(``core.params.validate_node_params``)."""

from __future__ import annotations

from typing import Any

from gait_estimator.conventions import IMU_LOCATIONS, JOINTS, OPTIONAL_IMU_LOCATIONS
from gait_estimator.core import topology
from gait_estimator.core.param_spec import ParamSpec
from gait_estimator.core.param_spec import param as _p

_LOCS = IMU_LOCATIONS + OPTIONAL_IMU_LOCATIONS

# Parameters shared by the nodes that need the same value (kept identical by construction).
_MODEL_PATH = _p(
    "model_path",
    "string",
    "",
    "model file (gait_estimator format; .pt TorchScript, .onnx ONNX Runtime, .pt2 torch.export: the "
    "suffix picks the runtime); empty = the installed default model (default.pt); a bare name of an "
    "installed model, e.g. default.onnx (the same model for ONNX Runtime), picks that one",
    allow_empty=True,
)
_CALIBRATION_FILE = _p(
    "calibration_file",
    "string",
    "",
    "per-wearer sensor-to-segment calibration YAML (gait-estimator calibrate, or the calibrator "
    "node); every frame is turned into the segment frames before features, a flagged sensor is "
    "invalid (zero command). Empty = sensors mounted in the model's frames. Read at configure "
    "(a lifecycle node takes a new file while unconfigured: cleanup, set, configure)",
    allow_empty=True,
)
_SUBJECT_MASS = _p(
    "subject_mass_kg",
    "double",
    70.0,
    "wearer's body mass; scales N.m/kg model output to N.m",
    min=20.0,
    max=250.0,
)
_INFERENCE_MODE = _p(
    "inference_mode",
    "string",
    "window",
    "window: run the whole window through the model for every estimate (the model's own "
    "contract, O(window) per estimate). streaming: step the model one row at a time from its "
    "carried state (forward_step), O(1) per sample; for a model with a finite receptive field "
    "no longer than the window (TCN) it equals window mode exactly (float32 rounding). For a "
    "recurrent model (LSTM/GRU) the state carries memory older than the window, which differs "
    "from how window-trained models were validated. Needs a model whose metadata says "
    "streaming true (configure fails otherwise). Read at configure",
    choices=("window", "streaming"),
    read_only=True,
)
_LOCATIONS = _p(
    "locations",
    "string_array",
    list(IMU_LOCATIONS),
    "IMU locations, one imu/<location> topic each",
    choices=_LOCS,
)

_BUNDLE_TOPIC = _p(
    "bundle_topic",
    "string",
    "imu/bundle",
    "topic of the bundled input: one gait_estimator_msgs/ImuBundle per sampling instant carrying every "
    "IMU (flat arrays; stamp_ns[i] = that sensor's own stamp, rate_hz = the sampling rate)",
)
# Every node's executor (read once at start by nodes.runner.run_node).
EXECUTOR = _p(
    "executor",
    "string",
    "events",
    "rclpy executor that spins this node, read at start: events (default; rclpy.experimental."
    "EventsExecutor, C++ event queue: measured 8x lower latency and a third of the manager's CPU "
    "in bench_latency) or single_threaded (rclpy SingleThreadedExecutor)",
    choices=("events", "single_threaded"),
    read_only=True,
)

# Real-time scheduling of a data-path process (core/realtime.py; names after ros2_control's
# controller_manager), applied once at start by nodes.runner.run_node to every thread the process has.
REALTIME = (
    _p(
        "thread_priority",
        "int",
        0,
        "real-time priority of the data path, read at start: 0 = normal scheduling (default); 1-99 = "
        "SCHED_FIFO (or realtime_policy) at this priority for every thread of the process (executor "
        "and DDS threads). Needs an rtprio limit (README: real-time scheduling); without one the node "
        "runs as before and logs one warning",
        min=0,
        max=99,
        read_only=True,
    ),
    _p(
        "realtime_policy",
        "string",
        "fifo",
        "policy when thread_priority > 0: fifo (SCHED_FIFO) or rr (SCHED_RR: a time slice among "
        "real-time threads of the same priority)",
        choices=("fifo", "rr"),
        read_only=True,
    ),
    _p(
        "cpu_affinity",
        "int_array",
        [],
        "cores the process runs on, read at start (empty = any core)",
        min=0,
        max=4095,
        allow_empty=True,
        read_only=True,
    ),
    _p(
        "lock_memory",
        "bool",
        False,
        "mlockall(MCL_CURRENT | MCL_FUTURE) at start: no page fault in the data path (needs a "
        "memlock limit, README)",
        read_only=True,
    ),
)

# The lifecycle manager hosts the command sentinel, which lives on DDS event callbacks (liveliness);
# rclpy 7.1.6's EventsExecutor has open crash reports around entities with event callbacks
# (ros2/rclpy#1644), so this safety component stays on the single-threaded executor by default
# (measured 18 % of a core with the sentinel at 200 commands/s; events: 7 %).
MANAGER_EXECUTOR = _p(
    "executor",
    "string",
    "single_threaded",
    "rclpy executor of the manager, read at start: single_threaded (default: the command sentinel's "
    "event callbacks stay off the experimental EventsExecutor) or events (a third of the CPU)",
    choices=("events", "single_threaded"),
    read_only=True,
)

DRIVER = (
    _p(
        "source",
        "string",
        "sim",
        "IMU backend: sim (simulator in real time), file (dataset/CSV), "
        "serial (binary frame protocol, see nodes.serial_protocol)",
        choices=("sim", "file", "serial"),
    ),
    _LOCATIONS,
    _p(
        "imu_output",
        "string",
        "topics",
        "topics: one sensor_msgs/Imu per IMU on imu/<location>; bundle: one ImuBundle per sampling "
        "instant on bundle_topic (fewer messages and wake-ups downstream); both",
        choices=("topics", "bundle", "both"),
    ),
    _BUNDLE_TOPIC,
    _p(
        "rate_hz",
        "double",
        100.0,
        "sample rate of the sim backend; file replays at its own rate "
        "unless this is > 0 and rate_override is true",
        min=1.0,
        max=2000.0,
    ),
    _p(
        "frame_prefix",
        "string",
        "imu_",
        "frame_id of imu/<location> is <frame_prefix><location>",
        allow_empty=True,
    ),
    _p(
        "acc_noise_std",
        "double",
        0.05,
        "accelerometer noise std (m/s^2), diagonal covariance",
        min=0.0,
        max=10.0,
    ),
    _p(
        "gyro_noise_std",
        "double",
        0.005,
        "gyroscope noise std (rad/s), diagonal covariance",
        min=0.0,
        max=10.0,
    ),
    _p(
        "orientation_std",
        "double",
        0.02,
        "orientation noise std (rad), diagonal covariance",
        min=0.0,
        max=3.2,
    ),
    _p("duration_s", "double", 0.0, "stop streaming after this time (0 = forever)", min=0.0, max=1e6),
    _p(
        "publish_reference",
        "bool",
        True,
        "sim/file: publish the reference joint torques on gait/torque_reference",
    ),
    _p("sim_seed", "int", 7, "sim: random seed of the simulated subject and trial", min=0, max=2**31 - 1),
    _p("sim_speed_mps", "double", 1.3, "sim: walking speed", min=0.3, max=3.0),
    _p(
        "sim_loop_s",
        "double",
        60.0,
        "sim: length of the simulated trial that is streamed in a loop",
        min=2.0,
        max=3600.0,
    ),
    _p(
        "sim_clock_offset_s",
        "double",
        0.0,
        "sim: device clock minus host clock (exercises the synchronizer's offset estimation)",
        min=-1e6,
        max=1e6,
    ),
    _p("file_path", "string", "", "file: a dataset directory, a trial .npz or a CSV file", allow_empty=True),
    _p("file_trial", "int", 0, "file: index of the trial in a dataset directory", min=0, max=100000),
    _p("file_loop", "bool", True, "file: restart at the end"),
    _p("serial_port", "string", "", "serial: device path (e.g. /dev/ttyUSB0 or a pty)", allow_empty=True),
    _p("serial_baudrate", "int", 921600, "serial: baud rate", min=1200, max=12000000),
    _p(
        "fault_nan_location",
        "string",
        "",
        "fault injection: this IMU's samples become NaN ...",
        allow_empty=True,
        choices=("",) + _LOCS,
    ),
    _p(
        "fault_nan_start_s",
        "double",
        -1.0,
        "... from this time after the start (< 0: never) ...",
        min=-1.0,
        max=1e6,
    ),
    _p("fault_nan_duration_s", "double", 0.0, "... for this long", min=0.0, max=1e6),
)

SYNCHRONIZER = (
    _LOCATIONS,
    _p(
        "imu_input",
        "string",
        "topics",
        "topics: subscribe imu/<location> (sensor_msgs/Imu); bundle: subscribe bundle_topic (an "
        "imu_driver with imu_output bundle): every sample of an instant is pushed, then frames polled once",
        choices=("topics", "bundle"),
    ),
    _BUNDLE_TOPIC,
    _p(
        "rate_hz",
        "double",
        100.0,
        "output rate of gait/imu_frame (must equal the model's sample_rate_hz)",
        min=1.0,
        max=2000.0,
    ),
    _p(
        "latency_s",
        "double",
        0.03,
        "a frame is emitted at the latest this long after its time, "
        "earlier as soon as every IMU has a sample at or after it",
        min=0.0,
        max=1.0,
    ),
    _p(
        "max_gap_s",
        "double",
        0.1,
        "a stream is invalid when its newest sample is older than this",
        min=0.001,
        max=10.0,
    ),
    _p(
        "estimate_clock_offset",
        "bool",
        True,
        "estimate and remove each device's clock offset (for device clocks, e.g. serial IMUs); false "
        "when stamps are already host time (sim, file, drivers that stamp on receipt): the frame grid "
        "then lands on the sample stamps and a frame goes out as soon as its last IMU arrives, whereas "
        "an estimated offset moves samples off the grid by its jitter, so interpolation waits for the "
        "next sample (+1 sample period of latency)",
    ),
    _p(
        "poll_period_s",
        "double",
        0.0,
        "also emit due frames from a timer with this period (0 = only "
        "when samples arrive: if every IMU stops, frames stop and the command watchdog counts from the "
        "last real sample; a timer would first emit held, still-valid frames for max_gap_s)",
        min=0.0,
        max=1.0,
    ),
)

WINDOWING = (_MODEL_PATH, _CALIBRATION_FILE)

ESTIMATOR = (
    _MODEL_PATH,
    _SUBJECT_MASS,
    _p("threads", "int", 1, "torch intra-op threads", min=1, max=64),
    _INFERENCE_MODE,
    _p("diagnostics_period_s", "double", 1.0, "period of /diagnostics", min=0.05, max=60.0),
)

COMMAND = (
    _p("joints", "string_array", list(JOINTS), "joints of the command, in order", choices=JOINTS),
    _SUBJECT_MASS,
    _p(
        "gains",
        "double_array",
        [0.2] * len(JOINTS),
        "assistance gain per joint (fraction of the estimated biological torque)",
        min=-1.0,
        max=1.0,
    ),
    _p("phase_shift_s", "double", 0.0, "predictive time shift of the command", min=-0.5, max=0.5),
    _p("lowpass_hz", "double", 15.0, "command low-pass cutoff (0 = off)", min=0.0, max=500.0),
    _p("limit_nm", "double_array", [30.0] * len(JOINTS), "saturation per joint, N.m", min=0.0, max=500.0),
    _p("rate_limit_nm_s", "double", 1000.0, "slew-rate limit, N.m/s", min=1.0, max=1e6),
    _p("ramp_s", "double", 0.5, "ramp time when enabling/disabling", min=0.0, max=10.0),
    _p(
        "watchdog_s",
        "double",
        0.1,
        "no fresh estimate for this long ramps the command to zero",
        min=0.005,
        max=10.0,
    ),
    _p(
        "recovery_estimates",
        "int",
        10,
        "after a transient invalid input (a sensor stream late or lost: core/faults.py) the command "
        "comes back, with its ramp-in, after this many consecutive valid estimates",
        min=1,
        max=10000,
    ),
    _p(
        "control_rate_hz",
        "double",
        100.0,
        "minimum publish rate of exo/torque_command (an estimate triggers an immediate publish as well)",
        min=1.0,
        max=2000.0,
    ),
    _p(
        "publish_on_estimate",
        "bool",
        True,
        "publish a command on every estimate (lowest latency); the timer fills gaps at control_rate_hz",
    ),
    # ros2_control interop (nodes/interop.py), read at configure
    _p(
        "effort_topic",
        "string",
        "",
        "also publish every command as std_msgs/Float64MultiArray on this topic (a "
        "forward_command_controller / JointGroupEffortController commands topic; zeros when not "
        "valid); empty = off",
        allow_empty=True,
        read_only=True,
    ),
    _p(
        "effort_joints",
        "string_array",
        [],
        "joint order of effort_topic (the controller's joints parameter), a subset of joints; "
        "empty = joints",
        choices=JOINTS,
        allow_empty=True,
        read_only=True,
    ),
    _p(
        "joint_state_topic",
        "string",
        "",
        "also publish every command as sensor_msgs/JointState (effort = command, stamp = the command's) "
        "for PlotJuggler/Foxglove/rviz; empty = off",
        allow_empty=True,
        read_only=True,
    ),
    _p(
        "min_confidence",
        "double",
        0.5,
        "estimates whose confidence (JointTorque.confidence: model input vs. the model's training "
        "statistics, core/confidence.py) is below this ramp the command to zero at the rate limit; "
        "0 = off",
        min=0.0,
        max=1.0,
    ),
    _p("diagnostics_period_s", "double", 1.0, "period of /diagnostics", min=0.05, max=60.0),
)

CALIBRATOR = (
    _LOCATIONS,
    _p("standing_s", "double", 3.0, "seconds of standing still after a start request", min=0.5, max=60.0),
    _p("strides", "int", 8, "strides of walking after standing (counted on a leg IMU)", min=2, max=200),
    _p(
        "max_walk_s", "double", 60.0, "the calibration fails when the strides take longer", min=1.0, max=600.0
    ),
    _p("min_quality", "double", 0.5, "sensors below this calibration quality are flagged", min=0.0, max=1.0),
    _p(
        "output_file",
        "string",
        "",
        "wearer YAML written when a start request names no path",
        allow_empty=True,
    ),
    _p("wearer", "string", "wearer", "wearer name stored in the file"),
)

MANAGER = (
    _p(
        "node_names",
        "string_array",
        topology.managed(fused=False),
        "lifecycle nodes to configure and activate, in start-up order (shut down in reverse)",
    ),
    _p("autostart", "bool", True, "configure and activate at start-up"),
    _p(
        "check_period_s", "double", 0.5, "period of the state check of every managed node", min=0.05, max=60.0
    ),
    _p(
        "service_timeout_s",
        "double",
        2.0,
        "timeout of one get_state call (no answer = node dead)",
        min=0.1,
        max=120.0,
    ),
    _p(
        "missed_checks",
        "int",
        3,
        "consecutive unanswered get_state calls before a node counts as dead (1 = the first; more "
        "rides out a scheduling stall of a loaded machine; the command watchdog guards meanwhile)",
        min=1,
        max=100,
    ),
    _p(
        "transition_timeout_s",
        "double",
        30.0,
        "timeout of one change_state call (configure loads the model: seconds)",
        min=0.1,
        max=600.0,
    ),
    _p(
        "startup_timeout_s",
        "double",
        60.0,
        "how long to wait for the managed nodes to appear",
        min=1.0,
        max=3600.0,
    ),
    _p(
        "command_node",
        "string",
        "torque_command",
        "node whose output must be zeroed first on a failure (it is deactivated before anything else)",
        allow_empty=True,
    ),
    # command sentinel (nodes/command_sentinel.py)
    _p(
        "sentinel",
        "bool",
        True,
        "watch the command publisher and publish zero valid=false commands while it is dead",
        read_only=True,
    ),
    _p(
        "command_topic", "string", "exo/torque_command", "topic the sentinel watches and zeroes",
        read_only=True,
    ),
    _p(
        "joints",
        "string_array",
        list(JOINTS),
        "joints of the sentinel's zero commands until it has seen a command (then that command's joints)",
        choices=JOINTS,
        read_only=True,
    ),
    _p(
        "sentinel_period_s",
        "double",
        0.01,
        "check period of the sentinel and publish period of its zero commands",
        min=0.001,
        max=1.0,
        read_only=True,
    ),
    _p(
        "sentinel_timeout_s",
        "double",
        0.05,
        "no command for this long (and its liveliness lost, when the publisher offers a lease) = "
        "publisher dead",
        min=0.005,
        max=10.0,
        read_only=True,
    ),
    _p(
        "liveliness_lease_s",
        "double",
        0.05,
        "liveliness lease the sentinel requests; a command publisher offering a lease <= this is "
        "declared dead when its lease expires (a stalled but live process keeps it)",
        min=0.005,
        max=10.0,
        read_only=True,
    ),
)


def _without(schema, *names):
    return tuple(s for s in schema if s.name not in names)


FUSED = (
    (
        _p(
            "imu_source",
            "string",
            "topics",
            "topics: subscribe imu/<location> (driver elsewhere); bundle: subscribe bundle_topic "
            "(a driver with imu_output bundle); sim/file/serial: run that driver backend in this "
            "process (no DDS hop at all)",
            choices=("topics", "bundle", "sim", "file", "serial"),
        ),
        _p("publish_frames", "bool", False, "also publish gait/imu_frame (costs latency)"),
        _p("driver_rate_hz", "double", 100.0, "sample rate of an in-process sim driver", min=1.0, max=2000.0),
        _MODEL_PATH,
        _CALIBRATION_FILE,
        _SUBJECT_MASS,
        _p("threads", "int", 1, "torch intra-op threads", min=1, max=64),
        _INFERENCE_MODE,
    )
    + _without(DRIVER, "source", "rate_hz", "imu_output")
    + _without(SYNCHRONIZER, "locations", "rate_hz", "poll_period_s", "imu_input", "bundle_topic")
    + _without(COMMAND, "subject_mass_kg")
)
# (the synchronizer of the fused node runs at the model's sample_rate_hz)

# ros2 node name (default) -> schema; every node chooses its executor (the manager's service calls
# wait on its worker thread, never inside a callback, so either executor serves it)
# (the data-path nodes also take the real-time settings)
SCHEMAS: dict[str, tuple[ParamSpec, ...]] = {
    "imu_driver": DRIVER + (EXECUTOR,) + REALTIME,
    "imu_synchronizer": SYNCHRONIZER + (EXECUTOR,) + REALTIME,
    "windowing": WINDOWING + (EXECUTOR,) + REALTIME,
    "torque_estimator": ESTIMATOR + (EXECUTOR,) + REALTIME,
    "torque_command": COMMAND + (EXECUTOR,) + REALTIME,
    "lifecycle_manager": MANAGER + (MANAGER_EXECUTOR,),
    "gait_pipeline": FUSED + (EXECUTOR,) + REALTIME,
    "calibrator": CALIBRATOR + (EXECUTOR,),
}
# Parameters every node has from rclpy itself.
BUILTIN = {"use_sim_time", "start_type_description_service"}


def _check_schema_unique() -> None:
    for node, schema in SCHEMAS.items():
        names = [s.name for s in schema]
        if len(names) != len(set(names)):  # pragma: no cover - programming error
            raise AssertionError(f"duplicate parameter in schema {node}: {names}")


_check_schema_unique()


def defaults(node: str) -> dict[str, Any]:
    return {s.name: s.default for s in SCHEMAS[node]}


