#!/usr/bin/env bash
# Install a single-node Slurm (Debian packages: Slurm 22.05 on bookworm) plus munge,
# for tests/test_slurm.py. Idempotent: does nothing when everything is already installed.
# Needs root (or sudo). The tests start the daemons themselves (no systemd).
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_slurm: already installed: ${PKGS[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_slurm: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install_slurm: installing ${missing[*]}"
# Keep the packages' postinst scripts from starting munge/slurmd/slurmctld services (the tests
# start private daemons of their own): a temporary policy-rc.d that denies every start.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

for b in slurmctld slurmd sinfo sbatch squeue munged; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || { echo "install_slurm: $b missing after install" >&2; exit 1; }
done
echo "install_slurm: done (slurm $(dpkg-query -W -f='${Version}' slurmctld))"
