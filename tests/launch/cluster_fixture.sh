#!/bin/bash
# CTest fixture: starts the local Slurm cluster for the slurm tests and stops it afterwards, but
# only when ctest started it (a cluster someone had running before stays up).
#   cluster_fixture.sh start|stop MARKER_FILE
set -euo pipefail
cluster=$(dirname "$0")/../../launch/slurm/local-cluster.sh
case "$1" in
  start)
    rm -f "$2"
    if ! "$cluster" status >/dev/null 2>&1; then
      "$cluster" start
      touch "$2"
    fi
    "$cluster" status
    ;;
  stop)
    if [ -f "$2" ]; then
      "$cluster" stop
      rm -f "$2"
    else
      echo "cluster was running before ctest: left running"
    fi
    ;;
esac
