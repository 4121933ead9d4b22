#!/usr/bin/env bash
# Installs the ROS 2 tools that have no PyPI wheel into a virtual environment, from their upstream sources.
#
#   scripts/setup_ros_tools.sh VENV [VENDOR]
#
# VENV holds the ROS 2 wheels (scripts/setup_ros.sh installs them first). VENDOR (default: $ROS_VENDOR, else
# ../shared/vendor beside the repository) holds the sources, laid out as:
#   ros2-tools/<package>   launch, launch_xml, launch_yaml, launch_testing, launch_ros, launch_testing_ros,
#                          ros2launch, ros2cli and its verbs, rosidl_runtime_py (ament_python packages),
#                          composition_interfaces (messages)
#   message_filters/       the Python module message_filters
#   hri_msgs/, tf2_msgs/   messages
# The sources are read only: everything is built in a temporary copy. What comes from where:
#   - a sourced ROS 2 distribution (ROS_DISTRO set): its own packages; nothing is built, and the missing ones
#     are named with the apt package that has them;
#   - else VENDOR: the Python packages with pip (no dependencies; osrf-pycommon, argcomplete and psutil from
#     PyPI), the message packages with CMake against the wheels, all installed into VENV;
#   - else nothing: the set-up still succeeds, and this says which tools are missing and how to get them.
# Safe to run again: it installs only what is missing or of another version.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ME="scripts/setup_ros_tools.sh"

die() {
    echo "$ME: error: $*" >&2
    exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $ME VENV [VENDOR]"
VENV=$(cd "$1" && pwd) || die "no virtual environment at '$1'"
PY="$VENV/bin/python"
[ -x "$PY" ] || die "'$VENV' is not a virtual environment (no bin/python)"
VENDOR=${2:-${ROS_VENDOR:-$ROOT/../shared/vendor}}

# Python packages (folder and distribution name), in ros2-tools/.
PYTHON_PACKAGES=(launch launch_xml launch_yaml launch_testing launch_ros launch_testing_ros rosidl_runtime_py
    ros2cli ros2pkg ros2run ros2node ros2service ros2param ros2lifecycle ros2topic ros2launch)
# Message packages: folder (relative to VENDOR) and package name.
MESSAGE_PACKAGES=(ros2-tools/composition_interfaces hri_msgs tf2_msgs)
# What the Python packages need from PyPI beyond what the wheels bring (never 'lark': the rosidl_parser
# wheel's lark-parser provides the same module).
PYPI_REQUIREMENTS=(osrf-pycommon argcomplete psutil)
# Module to import -> the apt package of a ROS 2 distribution that has it.
MODULES=(launch:launch launch_ros:launch-ros launch_testing:launch-testing launch_testing_ros:launch-testing-ros
    ros2cli:ros2cli ros2launch:ros2launch ros2run:ros2run ros2pkg:ros2pkg ros2node:ros2node
    ros2param:ros2param ros2lifecycle:ros2lifecycle ros2topic:ros2topic ros2service:ros2service
    rosidl_runtime_py:rosidl-runtime-py composition_interfaces:composition-interfaces
    message_filters:message-filters hri_msgs:hri-msgs tf2_msgs:tf2-msgs)

# Prints "module:apt-name" for each module that $PY cannot import.
missing_modules() {
    "$PY" - "${MODULES[@]}" <<'EOF'
import importlib.util, sys
for item in sys.argv[1:]:
    module = item.split(':')[0]
    if importlib.util.find_spec(module) is None:
        print(item)
EOF
}

if [ -n "${ROS_DISTRO:-}" ]; then
    MISSING=$(missing_modules)
    if [ -n "$MISSING" ]; then
        echo "$ME: warning: ROS 2 $ROS_DISTRO lacks: $(echo "$MISSING" | cut -d: -f1 | xargs);" \
            "install them: sudo apt-get install$(echo "$MISSING" | cut -d: -f2 | sed "s/^/ ros-$ROS_DISTRO-/" | tr -d '\n')" >&2
    fi
    exit 0
fi

if [ ! -d "$VENDOR/ros2-tools" ]; then
    echo "$ME: warning: no ROS 2 tools: the ros2 command (run, launch, pkg, node, param, lifecycle, topic," \
        "service), launch, launch_testing, rosidl_runtime_py, message_filters, hri_msgs, tf2_msgs and" \
        "composition_interfaces are not installed, so ros2 run/launch, the launch tests and the README's ros2" \
        "commands will not work. Get them from a ROS 2 distribution (Humble, Jazzy or Kilted: source its" \
        "setup.bash, then make setup again), or give their sources: make setup ROS_VENDOR=/path/to/vendor" \
        "(the layout of ../shared/vendor; no sources at '$VENDOR')." >&2
    exit 0
fi
VENDOR=$(cd "$VENDOR" && pwd)

WORK=$(mktemp -d)
LOG="$WORK/log"
trap 'rm -rf "$WORK"' EXIT

quietly() {
    if ! "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        die "failed: $*"
    fi
}

# version NAME: the version in VENDOR's package.xml of folder NAME.
version() {
    sed -n 's:.*<version>\([^<]*\)</version>.*:\1:p' "$VENDOR/$1/package.xml" | head -n 1
}

# --- Python packages --------------------------------------------------------------------------------------
WANTED=()
for name in "${PYTHON_PACKAGES[@]}"; do WANTED+=("$name==$(version "ros2-tools/$name")"); done
TO_INSTALL=$("$PY" - "${WANTED[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for item in sys.argv[1:]:
    name, wanted = item.split('==')
    try:
        if version(name) == wanted:
            continue
    except PackageNotFoundError:
        pass
    print(name)
EOF
)
if ! "$PY" -c 'import osrf_pycommon, argcomplete, psutil' >/dev/null 2>&1; then
    quietly "$PY" -m pip install --disable-pip-version-check "${PYPI_REQUIREMENTS[@]}"
fi
if [ -n "$TO_INSTALL" ]; then
    SOURCES=()
    for name in $TO_INSTALL; do
        cp -r "$VENDOR/ros2-tools/$name" "$WORK/$name"
        chmod -R u+w "$WORK/$name"
        SOURCES+=("$WORK/$name")
    done
    quietly "$PY" -m pip install --disable-pip-version-check --no-deps --no-build-isolation "${SOURCES[@]}"
fi

# --- message_filters: one pure-Python module --------------------------------------------------------------
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! diff -rq -x __pycache__ "$VENDOR/message_filters/message_filters" "$SITE/message_filters" >/dev/null 2>&1; then
    rm -rf "$SITE/message_filters"
    cp -r "$VENDOR/message_filters/message_filters" "$SITE/message_filters"
    chmod -R u+w "$SITE/message_filters"
fi

# --- message packages, built against the wheels into VENV ---------------------------------------------------
BUILD_ENV=(env "PATH=$VENV/bin:$PATH" "AMENT_PREFIX_PATH=$VENV" "CMAKE_PREFIX_PATH=$VENV")
for folder in "${MESSAGE_PACKAGES[@]}"; do
    name=$(basename "$folder")
    installed="$VENV/share/$name/package.xml"
    if [ -f "$installed" ] && cmp -s "$installed" "$VENDOR/$folder/package.xml"; then
        continue
    fi
    cp -r "$VENDOR/$folder" "$WORK/$name"
    chmod -R u+w "$WORK/$name"
    quietly "${BUILD_ENV[@]}" cmake -S "$WORK/$name" -B "$WORK/build-$name" -DCMAKE_INSTALL_PREFIX="$VENV" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY"
    quietly "${BUILD_ENV[@]}" cmake --build "$WORK/build-$name" --parallel "$(nproc 2>/dev/null || echo 2)"
    quietly "${BUILD_ENV[@]}" cmake --install "$WORK/build-$name"
done

MISSING=$(missing_modules)
[ -z "$MISSING" ] || die "installed from $VENDOR, but still cannot import: $(echo "$MISSING" | cut -d: -f1 | xargs)"
echo "$ME: ROS 2 tools installed in $VENV from $VENDOR (ros2, launch, launch_testing, message_filters, ...)"
