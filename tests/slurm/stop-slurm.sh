#!/bin/bash
# Vendored from the team's shared tools (shared/tools/slurm/stop-slurm.sh) so that CI can start
# a real single-node SLURM cluster without the shared folder.
# Stop only the daemons that start-slurm.sh started, using the PIDs it recorded
# in $SLURM_CI_ROOT/pids (never by name). Safe to run repeatedly.
set -uo pipefail
ROOT=${SLURM_CI_ROOT:-/tmp/local-slurm}
PIDDIR=$ROOT/pids

# alive <pid> <comm>: running, not a zombie, and still the same program
alive() { kill -0 "$1" 2>/dev/null && [ "$(cat /proc/"$1"/comm 2>/dev/null)" = "$2" ] &&
          ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2>/dev/null; }

for d in slurmd slurmctld slurmdbd mariadbd munged; do   # reverse start order
  f=$PIDDIR/$d.pid
  [ -s "$f" ] || continue
  p=$(cat "$f")
  if ! alive "$p" $d; then
    echo "[stop-slurm] $d (pid $p) not running"; rm -f "$f"; continue
  fi
  echo "[stop-slurm] stopping $d pid $p"
  kill -TERM "$p"
  for _ in $(seq 1 150); do alive "$p" $d || break; sleep 0.1; done
  if alive "$p" $d; then
    echo "[stop-slurm] $d pid $p ignored SIGTERM for 15 s, sending SIGKILL"
    kill -KILL "$p"; sleep 0.5
  fi
  rm -f "$f"
done
exit 0
