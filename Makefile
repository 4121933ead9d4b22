# openpose_ros: set-up, tests, benchmarks and demo. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH_VERSION ?= 2.13.0
# Sources of the ROS 2 tools that have no wheel (ros2, launch, launch_testing, ...), used where no ROS 2
# distribution is sourced; without them the set-up says what is missing and goes on.
ROS_VENDOR ?= ../shared/vendor
# Every command that may touch DDS stays on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
ROS_ENV := source scripts/ros_env.sh &&

.PHONY: help setup test test-fast bench gpu-check demo clean

help:
	@echo "make setup      create $(VENV)/ with everything (torch, ONNX Runtime, ROS 2 wheels and tools) and build the package"
	@echo "make test       run the whole test suite (make test-fast skips the slow tests)"
	@echo "make bench      speed and memory benchmarks, printed as JSON"
	@echo "make gpu-check  the CUDA tests and the GPU's figures (out/gpu_check.json); says so without a GPU"
	@echo "make demo       the pose estimation node on a real video, through ROS 2 (VIDEO=..., WEIGHTS=...)"

# CUDA machines get the CUDA builds of torch (PyPI's default) and ONNX Runtime; others the CPU ones.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

setup:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install torch==$(TORCH_VERSION)
	$(PIP) install -e '.[train,bags,test]'
ifeq ($(HAS_CUDA),1)
	$(PIP) uninstall -y onnxruntime
	$(PIP) install onnxruntime-gpu
endif
	ROS_VENDOR=$(ROS_VENDOR) bash scripts/setup_ros.sh $(VENV)
	@echo "set-up complete: $(VENV)/ (run 'make test')"

test:
	$(ROS_ENV) $(PY) -m pytest -ra $(PYTEST_ARGS)

test-fast:
	$(ROS_ENV) $(PY) -m pytest -ra -m 'not slow' $(PYTEST_ARGS)

bench:
	$(ROS_ENV) $(PY) benchmarks/bench.py $(BENCH_ARGS)

gpu-check:
	$(ROS_ENV) $(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# The main job without a camera. WEIGHTS: a saved model folder, a checkpoint, or download (the published model).
VIDEO ?= ../shared/data/video/vtest.avi
WEIGHTS ?= download
demo:
	$(ROS_ENV) $(PY) -m openpose_ros.ros.demo $(VIDEO) --weights $(WEIGHTS) --output out/demo $(DEMO_ARGS)

clean:
	rm -rf build install log temp .pytest_cache .mypy_cache
