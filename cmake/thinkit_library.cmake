# thinkit_library(): one library target per folder of lib/, with the layering
# enforced by the compiler.
#
#   thinkit_library(NAME thinkit_check FOLDER thin/check
#                   SOURCES check.cc fast_check.cc
#                   DEPENDS thinkit_format thinkit_pdata
#                   [LIBS fmt::fmt ...])
#
# Headers are included by their path below lib/ ("thin/format/superblock.h").
# A target does not get lib/ on its include path: it gets a tree of its own
# in the build directory (include/<NAME>/) holding links to its own folder and
# to the folders of everything it DEPENDS on (transitively), and nothing else.
# So an #include of a folder the target may not use does not compile: the
# folders are the dependency graph. tests/layering_test.cmake checks the same
# graph over the sources (it also catches "../" includes).
#
# Every target's folder and allowed folders are written to
# ${CMAKE_BINARY_DIR}/layering.txt for that test.

set(THINKIT_LAYERING_FILE ${CMAKE_BINARY_DIR}/layering.txt)
file(WRITE ${THINKIT_LAYERING_FILE} "")

function(thinkit_library)
  cmake_parse_arguments(L "" "NAME;FOLDER" "SOURCES;DEPENDS;LIBS" ${ARGN})
  add_library(${L_NAME} STATIC ${L_SOURCES})
  list(TRANSFORM L_LIBS REPLACE "^fmt::fmt$" "${THINKIT_FMT}")
  set_property(GLOBAL PROPERTY ${L_NAME}_FOLDER ${L_FOLDER})
  # The folders this target may include: its own and its dependencies' closure.
  set(folders ${L_FOLDER})
  foreach(dep ${L_DEPENDS})
    get_property(dep_folders GLOBAL PROPERTY ${dep}_FOLDERS)
    if(NOT dep_folders)
      message(FATAL_ERROR "${L_NAME}: dependency ${dep} must be defined before it")
    endif()
    list(APPEND folders ${dep_folders})
  endforeach()
  list(REMOVE_DUPLICATES folders)
  set_property(GLOBAL PROPERTY ${L_NAME}_FOLDERS ${folders})
  set(tree ${CMAKE_BINARY_DIR}/include/${L_NAME})
  file(REMOVE_RECURSE ${tree})
  foreach(f ${folders})
    get_filename_component(parent ${tree}/${f} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/lib/${f} ${tree}/${f} SYMBOLIC)
  endforeach()
  target_include_directories(${L_NAME} PUBLIC ${tree})
  target_link_libraries(${L_NAME} PUBLIC ${L_DEPENDS} ${L_LIBS})
  string(REPLACE ";" " " allowed "${folders}")
  file(APPEND ${THINKIT_LAYERING_FILE} "${L_FOLDER}: ${allowed}\n")
endfunction()
