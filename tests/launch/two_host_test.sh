#!/bin/bash
# Multi-host simulation: two network namespaces play two hosts joined by a veth pair; Open MPI
# starts one rank in each (mpirun runs in host A, and its launch agent, netns_agent.sh, enters
# host B's namespace where ssh would log in), the ranks talk over TCP only. A 2-"node" clip_tiny
# run through launch/mpirun.sh --hostfile must equal the single-host 2-rank run bitwise
# (deterministic mode): every logged loss and grad norm, and every tensor of the final checkpoint
# (parameters and Adam moments, compared with h5py).
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root for ip netns (CI runs as root)"
command -v ip >/dev/null || fail "ip not found (Debian: iproute2)"
dir=$(new_dir two-host)
a=tsr_a$$ b=tsr_b$$ net=10.$((70 + $$ % 8)).$(($$ % 250)).
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; }
trap cleanup EXIT
ip netns add "$a" && ip netns add "$b" || fail "ip netns add failed"
ip link add "va$$" type veth peer name "vb$$" || fail "veth pair not created"
ip link set "va$$" netns "$a" && ip link set "vb$$" netns "$b" || fail "veth not moved"
ip -n "$a" addr add "${net}1/24" dev "va$$" && ip -n "$b" addr add "${net}2/24" dev "vb$$" ||
  fail "addresses not set"
for ns_dev in "$a va$$" "$b vb$$"; do
  set -- $ns_dev
  ip -n "$1" link set lo up && ip -n "$1" link set "$2" up || fail "links not up in $1"
done
printf '%s1 %s\n%s2 %s\n' "$net" "$a" "$net" "$b" >"$dir/netns.map"
printf '%s1 slots=1\n%s2 slots=1\n' "$net" "$net" >"$dir/hostfile"
export TESSERA_NETNS_MAP=$dir/netns.map
export OMPI_MCA_plm_rsh_agent=$src/tests/launch/netns_agent.sh OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=${net}0/24 OMPI_MCA_oob_tcp_if_include=${net}0/24

# The ranks really are in the two namespaces.
where=$(timeout 60 ip netns exec "$a" mpirun --allow-run-as-root --hostfile "$dir/hostfile" -np 2 \
  -x TESSERA_NETNS_MAP sh -c 'echo "$OMPI_COMM_WORLD_RANK $(ip -o -4 addr show scope global | awk "{print \$4}")"' |
  sort) || fail "mpirun across the namespaces failed: $where"
echo "$where"
[ "$where" = "$(printf '0 %s1/24\n1 %s2/24' "$net" "$net")" ] || fail "ranks not placed one per namespace"

args=(configs/clip_tiny.pbtxt --set train.steps=8 --set train.deterministic=true
  --set log.every_steps=1 --set checkpoint.every_steps=8 --quiet)
cd "$src"
timeout 240 ip netns exec "$a" env TESSERA_BIN="$bin" launch/mpirun.sh --hostfile "$dir/hostfile" \
  --threads 1 --run-dir "$dir/two" "${args[@]}" || fail "the two-host run failed"
unset OMPI_MCA_plm_rsh_agent OMPI_MCA_btl OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include
timeout 240 env TESSERA_BIN="$bin" launch/mpirun.sh -n 2 --threads 1 --run-dir "$dir/one" \
  "${args[@]}" || fail "the single-host run failed"
/usr/bin/python3 "$src/tests/launch/compare_runs.py" "$dir/two" "$dir/one" 8 || fail "the runs differ"
rm -rf "$dir"
echo PASS
