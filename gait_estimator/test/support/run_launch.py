"""``ros2 launch PACKAGE FILE name:=value ...`` without the ``ros2`` CLI (ros2cli is not on PyPI):
the same steps as ``ros2launch.api.launch_a_launch_file`` of Jazzy. The file is found in the
package's share directory through the ament index (``AMENT_PREFIX_PATH``), as ``ros2 launch``
finds it; the exit status is ``LaunchService.run()``'s.

    python run_launch.py gait_estimator pipeline.launch.py namespace:=exo1
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import launch
    from ament_index_python.packages import get_package_share_directory
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    package, file_name, *arguments = argv
    path = Path(get_package_share_directory(package)) / "launch" / file_name
    pairs = [tuple(a.split(":=", 1)) for a in arguments]
    service = launch.LaunchService(argv=arguments, noninteractive=True)
    include = launch.actions.IncludeLaunchDescription(
        AnyLaunchDescriptionSource(str(path)), launch_arguments=pairs
    )
    service.include_launch_description(launch.LaunchDescription([include]))
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
