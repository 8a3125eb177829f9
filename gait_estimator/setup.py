"""ament_python package gait_estimator (see ../README.md)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "gait_estimator"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={package_name: ["py.typed", "sim/*.json", "data/lab_models/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
        (
            f"share/{package_name}/models",
            glob("models/*.pt") + glob("models/*.onnx") + glob("models/*.json") + glob("models/*.md"),
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="gait_estimator developers",
    maintainer_email="dev@gait-estimator.invalid",
    description="Real-time joint torque estimation from wearable IMUs for exoskeletons (ROS 2).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "gait-estimator = gait_estimator.cli.main:main",
            "imu_driver = gait_estimator.nodes.imu_driver:main",
            "imu_synchronizer = gait_estimator.nodes.imu_synchronizer:main",
            "windowing = gait_estimator.nodes.windowing:main",
            "torque_estimator = gait_estimator.nodes.torque_estimator:main",
            "torque_command = gait_estimator.nodes.torque_command:main",
            "lifecycle_manager = gait_estimator.nodes.lifecycle_manager:main",
            "gait_pipeline = gait_estimator.nodes.gait_pipeline:main",
            "bag_player = gait_estimator.nodes.bag_player:main",
            "calibrator = gait_estimator.nodes.calibrator:main",
        ],
    },
)
