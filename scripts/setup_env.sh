#!/usr/bin/env bash
# Idempotent environment setup from a bare machine:
#   .venv (Python 3.11) <- ROS 2 Jazzy wheels, torch==2.13.0 (CPU), project requirements
#   gait_estimator_msgs  <- built with CMake, installed into the venv prefix itself
#   gait_estimator       <- installed editable into the venv
# Each step records a stamp (hash of its inputs) and is skipped when the stamp matches, so a
# second run only checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
build="$root/build"
py_bin=${PYTHON:-python3.11}
mkdir -p "$build"
export ROS_LOG_DIR="$build/ros_log"

stamp_ok() { [ -f "$build/$1.stamp" ] && [ "$(cat "$build/$1.stamp")" = "$2" ]; }
stamp_set() { echo "$2" > "$build/$1.stamp"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $py_bin"
  "$py_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

req_hash=$(hash_of requirements/*.txt)
if ! stamp_ok requirements "$req_hash"; then
  echo "[setup] installing ROS 2 Jazzy wheels, torch==2.13.0 and requirements"
  # One resolver run, so every ros-* pin and torch==2.13.0 are honoured together.
  "${pip[@]}" install -r requirements/ros-jazzy.txt -r requirements/python.txt -r requirements/dev.txt 2>&1 \
    | { grep -v "^WARNING: Location '" || true; }
  stamp_set requirements "$req_hash"
else
  echo "[setup] requirements: up to date"
fi

msgs_hash=$(hash_of gait_estimator_msgs/CMakeLists.txt gait_estimator_msgs/package.xml gait_estimator_msgs/cmake/*.cmake gait_estimator_msgs/msg/*.msg)
if ! stamp_ok msgs "$msgs_hash-$req_hash" || ! "$venv/bin/python" -c "import gait_estimator_msgs.msg" 2>/dev/null; then
  echo "[setup] building gait_estimator_msgs with CMake into $venv"
  rm -rf "$build/gait_estimator_msgs"
  cmake -S gait_estimator_msgs -B "$build/gait_estimator_msgs" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DPython3_EXECUTABLE="$venv/bin/python" > "$build/msgs_cmake.log" 2>&1 \
    || { cat "$build/msgs_cmake.log"; exit 1; }
  cmake --build "$build/gait_estimator_msgs" -j "$(nproc)" > "$build/msgs_build.log" 2>&1 \
    || { tail -50 "$build/msgs_build.log"; exit 1; }
  cmake --install "$build/gait_estimator_msgs" > "$build/msgs_install.log" 2>&1 \
    || { tail -50 "$build/msgs_install.log"; exit 1; }
  stamp_set msgs "$msgs_hash-$req_hash"
else
  echo "[setup] gait_estimator_msgs: up to date"
fi

pkg_hash=$(hash_of gait_estimator/setup.py gait_estimator/setup.cfg gait_estimator/package.xml)
if ! stamp_ok package "$pkg_hash-$req_hash" || ! "$venv/bin/python" -c "import gait_estimator" 2>/dev/null; then
  echo "[setup] installing gait_estimator (editable) into $venv"
  "${pip[@]}" install --no-deps --no-build-isolation -e gait_estimator 2>&1 \
    | { grep -v "^WARNING: Location '" || true; }
  stamp_set package "$pkg_hash-$req_hash"
else
  echo "[setup] gait_estimator: up to date"
fi
# The venv as an ament prefix, so launch_ros finds the package (ros2 launch gait_estimator ...,
# FindPackageShare, get_package_share_directory) with AMENT_PREFIX_PATH=$venv: the package index
# marker, share/gait_estimator/{package.xml,launch,config,models} and lib/gait_estimator/<node>,
# all symlinks into the checkout (cheap, redone every run).
share="$venv/share/gait_estimator"
mkdir -p "$venv/share/ament_index/resource_index/packages" "$share" "$venv/lib/gait_estimator"
: > "$venv/share/ament_index/resource_index/packages/gait_estimator"
for item in package.xml launch config models; do ln -sfn "$root/gait_estimator/$item" "$share/$item"; done
for exe in $("$venv/bin/python" -c 'from importlib.metadata import entry_points
print(" ".join(e.name for e in entry_points(group="console_scripts") if e.value.startswith("gait_estimator.nodes.")))'); do
  ln -sfn "$venv/bin/$exe" "$venv/lib/gait_estimator/$exe"
done
echo "[setup] ament prefix: $venv (for ros2 launch: export AMENT_PREFIX_PATH=$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH})"
echo "[setup] ok: $("$venv/bin/python" -c 'import rclpy, torch, gait_estimator_msgs.msg, gait_estimator; print("rclpy", "torch", torch.__version__)' 2>/dev/null)"
