# Sourced by the scripts of this directory that run `tessera train` under mpirun and check how it
# ends (out_of_memory_test.sh, rank_failure_test.sh). Arguments: TESSERA MPIEXEC CONFIG. Sets
# mpirun's root permission (CI runs as root), one thread per rank, a scratch directory $dir
# removed on exit, and fail MESSAGE.
set -u
tessera=$1 mpiexec=$2 config=$3
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export TESSERA_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
