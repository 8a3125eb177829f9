# ROS 2 wheels from PyPI ship `*__rosidl_generator_py` targets whose exported include
# directories point into the Python installation of the machine that built them. CMake refuses
# to generate with a missing imported include directory, so drop the ones that do not exist.
# On a regular ROS 2 install every directory exists and this changes nothing.
function(gait_estimator_drop_missing_include_dirs)
  get_directory_property(imported_targets IMPORTED_TARGETS)
  foreach(target IN LISTS imported_targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(kept "")
    set(dropped "")
    foreach(dir IN LISTS dirs)
      # Generator expressions are resolved later; keep them as they are.
      if(dir MATCHES "^\\$<" OR EXISTS "${dir}")
        list(APPEND kept "${dir}")
      else()
        list(APPEND dropped "${dir}")
      endif()
    endforeach()
    if(dropped)
      message(STATUS "drop_missing_include_dirs: ${target}: dropping missing include dirs: ${dropped}")
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
    endif()
  endforeach()
endfunction()
