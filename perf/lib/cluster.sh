# shellcheck shell=bash
# Shell helpers shared by perf/cluster, perf/cluster-exec and perf/baselines/run-baselines.
#
# Source it:  . "$(dirname "$0")/lib/cluster.sh"
# Everything here is a function or a variable prefixed fy_/FY_; nothing runs on source.
# The node helpers read the environment that perf/cluster exports to its command:
#   FERRY_NODES  FERRY_NETNS  FERRY_NODE_IPS  FERRY_SOCKETS  FERRY_COORD  FERRY_RUNDIR
#   FERRY_RATE_BPS

fy_log() { printf '[%s %(%H:%M:%S)T] %s\n' "${FY_LOG_TAG:-ferry}" -1 "$*" >&2; }
fy_die() { fy_log "error: $*"; exit 1; }

# fy_word LIST I: the I-th (0-based) word of a space-separated list.
fy_word() {
  local -a words
  read -r -a words <<<"$1"
  [[ $2 =~ ^[0-9]+$ && $2 -lt ${#words[@]} ]] || return 1
  printf '%s\n' "${words[$2]}"
}

# fy_node_ns I / fy_node_ip I / fy_node_socket I: node I's namespace, address, ferryd socket.
fy_node_ns() { fy_word "${FERRY_NETNS:?FERRY_NETNS not set (run under perf/cluster)}" "$1"; }
fy_node_ip() { fy_word "${FERRY_NODE_IPS:?FERRY_NODE_IPS not set (run under perf/cluster)}" "$1"; }
fy_node_socket() { fy_word "${FERRY_SOCKETS:?FERRY_SOCKETS not set (run under perf/cluster)}" "$1"; }

# fy_ns_exec NS CMD ARGS...: run CMD inside namespace NS (needs root), with the UCX settings a
# node uses (tcp only, eth0 only) unless the caller already set them.
fy_ns_exec() {
  local ns=$1
  shift
  ip netns exec "$ns" env UCX_TLS="${UCX_TLS:-tcp,self}" UCX_NET_DEVICES="${UCX_NET_DEVICES:-eth0}" "$@"
}

# fy_node_exec I CMD ARGS...: run CMD inside node I's namespace.
fy_node_exec() {
  local ns
  ns=$(fy_node_ns "$1") || { fy_log "no node $1 (FERRY_NETNS='$FERRY_NETNS')"; return 2; }
  shift
  fy_ns_exec "$ns" "$@"
}

# fy_ip_to_ns IP: the namespace of the node with address IP (from FERRY_NODE_IPS/FERRY_NETNS).
fy_ip_to_ns() {
  local -a ips nss
  read -r -a ips <<<"${FERRY_NODE_IPS:-}"
  read -r -a nss <<<"${FERRY_NETNS:-}"
  local i
  for i in "${!ips[@]}"; do
    if [[ ${ips[$i]} == "$1" ]]; then
      printf '%s\n' "${nss[$i]}"
      return 0
    fi
  done
  return 1
}

# fy_rate_bps RATE: tc-style rate ("1gbit", "500mbit", "100kbit", "2.5gbit", "1000000", "none")
# to bits/s on stdout ("none" -> 0). Returns 1 on a malformed rate.
fy_rate_bps() {
  local r=${1,,}
  [[ $r == none || $r == 0 ]] && { echo 0; return 0; }
  [[ $r =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|tbit)?$ ]] || return 1
  local mult=1
  case ${BASH_REMATCH[3]} in
    kbit) mult=1000 ;; mbit) mult=1000000 ;; gbit) mult=1000000000 ;; tbit) mult=1000000000000 ;;
  esac
  awk -v v="${BASH_REMATCH[1]}" -v m="$mult" 'BEGIN { printf "%.0f\n", v * m }'
}

# fy_wait_pid_gone PID SECONDS: poll (0.1 s) until PID has exited; 1 if still alive after SECONDS.
fy_wait_pid_gone() {
  local pid=$1 n=$(($2 * 10))
  while ((n-- > 0)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null
}

# fy_pid_starttime PID: the process's start time (clock ticks since boot, /proc/PID/stat field
# 22) on stdout; fails when PID does not exist. PID plus start time names one process: a pid
# that was recycled after its process died has a different start time.
fy_pid_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # fields after "(comm) "; comm may hold spaces and parentheses
  local -a f
  read -r -a f <<<"$stat"
  [[ -n ${f[19]:-} ]] || return 1
  printf '%s\n' "${f[19]}"
}

# fy_stop_pids GRACE PID...: SIGTERM each pid's process group (we start everything with setsid,
# so pid == pgid) and the pid itself, wait up to GRACE seconds, then SIGKILL what is left.
fy_stop_pids() {
  local grace=$1 pid
  shift
  for pid in "$@"; do
    kill -TERM -- "-$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
  done
  local deadline=$((SECONDS + grace))
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null || kill -0 -- "-$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  return 0
}

# fy_netns_list PREFIX: namespaces named PREFIX-* (one per line).
fy_netns_list() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${1//./\\.}-" || true
}

# fy_netns_destroy NS...: kill every process still inside each namespace (TERM, 2 s, KILL) --
# these are processes a cluster run started there -- then delete the namespace.
fy_netns_destroy() {
  local ns pids
  for ns in "$@"; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [[ -n ${pids// /} ]]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null
      local n=20
      while ((n-- > 0)) && [[ -n $(ip netns pids "$ns" 2>/dev/null) ]]; do sleep 0.1; done
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      # shellcheck disable=SC2086
      [[ -n ${pids// /} ]] && kill -KILL $pids 2>/dev/null
    fi
    ip netns delete "$ns" 2>/dev/null || true
  done
}
