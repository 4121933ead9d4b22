# Environment for running openpose_ros code that uses rclpy and the openpose_ros messages.
#
#   source scripts/ros_env.sh        (bash or zsh, from any folder)
#
# Needs the messages built by scripts/setup_ros.sh. Activates no virtual environment; it sets:
#   AMENT_PREFIX_PATH, PYTHONPATH, LD_LIBRARY_PATH  the package in install/ (messages, executables, and
#                                   links to the source tree's launch/ and config/) and, without a sourced
#                                   ROS 2, the ROS 2 wheels and tools in the virtual environment
#                                   ($OPENPOSE_ROS_VENV, else $VIRTUAL_ENV, else .venv at the repository root)
#   PATH                            without a sourced ROS 2, that environment's bin/ (ros2, launch_test, colcon)
#   RMW_IMPLEMENTATION=rmw_fastrtps_cpp
#   ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST           unless already set
#   FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml  unless already set
# With ROS 2 from a distribution, source its setup.bash first. Sourcing this twice changes nothing.

_op_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)

# _op_prepend VAR DIR: puts DIR first in the colon-separated list VAR, without duplicates.
_op_prepend() {
    local _value
    eval "_value=\${$1:-}"
    _value=":${_value}:"
    while case "$_value" in *":$2:"*) true ;; *) false ;; esac; do
        _value="${_value%%":$2:"*}:${_value#*":$2:"}"
    done
    _value="${_value#:}"
    _value="${_value%:}"
    export "$1=$2${_value:+:$_value}"
}

_op_install="$_op_root/install/openpose_ros"

if [ -z "${ROS_DISTRO:-}" ]; then
    # ROS 2 from the PyPI wheels, in a virtual environment.
    _op_venv=""
    for _op_candidate in "${OPENPOSE_ROS_VENV:-}" "${VIRTUAL_ENV:-}" "$_op_root/.venv"; do
        if [ -n "$_op_candidate" ] && [ -f "$_op_candidate/share/rclpy/package.xml" ]; then
            _op_venv="$_op_candidate"
            break
        fi
    done
    if [ -n "$_op_venv" ]; then
        _op_prepend AMENT_PREFIX_PATH "$_op_venv"
        # The wheels' libraries are found through LD_LIBRARY_PATH, which must be set before Python starts.
        # (Their own start-up hook would otherwise re-execute every Python process of the venv to set it.)
        for _op_libs in "$_op_venv"/lib/python3*/site-packages/ros_*.libs; do
            if [ -d "$_op_libs" ]; then _op_prepend LD_LIBRARY_PATH "$_op_libs"; fi
        done
        _op_prepend LD_LIBRARY_PATH "$_op_venv/lib"
        _op_prepend PATH "$_op_venv/bin"
        export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
    else
        echo "ros_env.sh: warning: no ROS 2 found: neither a sourced ROS 2 (ROS_DISTRO) nor the ROS 2 wheels" \
            "in \$OPENPOSE_ROS_VENV, \$VIRTUAL_ENV or $_op_root/.venv (run: make setup)" >&2
    fi
fi

if [ -d "$_op_install" ]; then
    _op_prepend AMENT_PREFIX_PATH "$_op_install"
    _op_prepend LD_LIBRARY_PATH "$_op_install/lib"
    for _op_site in "$_op_install"/lib/python3*/site-packages; do
        if [ -d "$_op_site" ]; then _op_prepend PYTHONPATH "$_op_site"; fi
    done
else
    echo "ros_env.sh: warning: the openpose_ros messages are not built ($_op_install is missing):" \
        "run scripts/setup_ros.sh VENV (make setup)" >&2
fi

export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_op_root/config/fastdds.xml}"

unset _op_root _op_install _op_venv _op_candidate _op_libs _op_site
unset -f _op_prepend
