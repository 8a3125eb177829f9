# gait_estimator: one entry point for setup, tests, benchmarks and the demo.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export ROS_LOG_DIR := $(CURDIR)/build/ros_log
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup lint test test-fast test-unit test-ros bench demo model real-data real-model clean

setup:  ## idempotent: venv, ROS 2 Jazzy wheels, torch==2.13.0, messages, package
	@bash scripts/setup_env.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(PY) scripts/import_map.py

test: setup lint  ## setup + lint + the whole test suite
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

test-unit: setup  ## the tiers without DDS: core, runtime, sim, datasets, train, replay (minutes)
	$(PY) -m pytest -m "not ros"

test-ros: setup  ## the slow tier: real nodes over DDS, launch files
	$(PY) -m pytest -m ros

bench: setup  ## every benchmark script prints its measured figures and ratios
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

demo: setup  ## the main job on the embedded default: simulated IMUs, shipped model
	$(PY) -m gait_estimator.cli.main demo

model: setup  ## reproduce the shipped default model from its seed: simulate, train (UG), evaluate, export
	$(PY) -m gait_estimator.train.default_model

real-data: setup  ## real-walker corpus from ../shared (schreiber2019, biomechzoo_children, mocap_walkers) -> build/real_data
	nice -n 10 $(PY) -m gait_estimator.data.real_corpus --shared ../shared --out build/real_data

real-model: setup  ## leave-persons-out over build/real_data (make real-data first): 4 person folds + the final fine-tune, report, real_candidate.pt if it passes the gate
	nice -n 15 $(PY) -m gait_estimator.train.real_lopo --corpus build/real_data --shared ../shared --default-report gait_estimator/models/default_report.md

clean:
	rm -rf build $(VENV)
