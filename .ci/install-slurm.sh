#!/usr/bin/env bash
# Installs a single-node SLURM (slurmctld, slurmd, client commands) and munge for
# tests/test_slurm.py. Safe to run again: apt-get skips what is already there.
# Starts nothing; tests/slurm_cluster.py writes the configuration and runs the daemons.
set -euo pipefail

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    echo "SLURM and munge already installed: $(slurmctld -V)"
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "no apt-get here: install slurmctld, slurmd, slurm-client and munge yourself;" \
        "tests/test_slurm.py is skipped without them" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# slurm-wlm pulls in slurmctld, slurmd and slurm-client; munge authenticates them.
$SUDO apt-get install -y -q --no-install-recommends slurm-wlm munge

# Package post-install scripts may start the services on systems with an init;
# the tests run their own daemons with their own configuration, so stop those.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now slurmctld slurmd munge 2>/dev/null || true
fi

echo "installed: $(slurmctld -V)"
