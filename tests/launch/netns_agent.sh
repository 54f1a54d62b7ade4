#!/bin/bash
# Open MPI launch agent (plm_rsh_agent) for the two-host simulation: instead of ssh HOST CMD it
# runs CMD inside the network namespace that plays HOST. The map is the file named by
# TESSERA_NETNS_MAP, lines "ADDRESS NAMESPACE". Open MPI calls: agent [options] HOST CMD...
while [[ "${1:-}" == -* ]]; do shift; done  # ssh-style options (-x ...), meaningless here
host=$1
shift
ns=$(awk -v h="$host" '$1 == h {print $2}' "${TESSERA_NETNS_MAP:?}")
[ -n "$ns" ] || { echo "netns_agent: no namespace for host '$host' in $TESSERA_NETNS_MAP" >&2; exit 1; }
exec ip netns exec "$ns" /bin/sh -c "$*"
