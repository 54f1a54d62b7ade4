# CTest labels: unit (fast, one process), mpi (several ranks under mpirun), gpu (has a CUDA
# variant that skips with "no CUDA device" when none is present), slow (minutes).
#
# tessera_add_test(NAME name SOURCES a.cc ... [LIBS ...] [LABELS ...] [RANKS n])
function(tessera_add_test)
  cmake_parse_arguments(T "" "NAME;RANKS;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE tessera_test_main ${T_LIBS})
  if(T_RANKS)
    add_test(NAME ${T_NAME}
             COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${T_RANKS}
                     $<TARGET_FILE:${T_NAME}>)
    list(APPEND T_LABELS mpi)
  else()
    add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  # Tests run two at a time on two cores: OpenMP threads that spin while waiting would steal the
  # cores from each other (100x slowdowns seen), so they sleep instead.
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "OMP_WAIT_POLICY=passive;TESSERA_SOURCE_DIR=${PROJECT_SOURCE_DIR};TESSERA_PYTHON=/usr/bin/python3;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endfunction()
