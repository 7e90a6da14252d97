#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust auth) and NATS with JetStream (127.0.0.1:4222)
# are running on this machine: starts them when installed, installs the Debian packages
# (postgresql, nats-server) when missing, and says clearly what is wrong otherwise.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) >/dev/null 2>&1; }
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "services: $* missing and not root: install it (apt-get install $*)" >&2; exit 1; fi
  echo "services: installing $* (apt)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() { # name, check-function
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "services: $1 did not come up" >&2; exit 1
}

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
    installed_pg=1
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "${installed_pg:-}" ]; then
    # A fresh Debian cluster asks for passwords on TCP; the dev/CI contract is trust on localhost.
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  echo "services: starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_for PostgreSQL pg_up
  # The package's postinst may have started the cluster under systemd before the edit above.
  [ -n "${installed_pg:-}" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  echo "services: PostgreSQL at 127.0.0.1:5432 refuses user postgres without a password; tests need trust auth on localhost (pg_hba.conf)" >&2
  exit 1
fi

if ! nats_up; then
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    apt_install nats-server
    # Debian's unit starts a server without JetStream on the same port: stop it, run ours.
    systemctl disable --now nats-server >/dev/null 2>&1 || true
    pkill -x nats-server >/dev/null 2>&1 || true
    sleep 0.5
  fi
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  mkdir -p /var/lib/nats-server
  echo "services: starting nats-server with JetStream"
  start-stop-daemon --start --oknodo --background --exec "$bin" -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for NATS nats_up
fi

# JetStream must be on: the monitoring-free check is a JetStream API request over the protocol.
node -e '
const { connect } = require("nats");
connect({ servers: "nats://127.0.0.1:4222" }).then(async (nc) => {
  try { await nc.jetstreamManager(); } catch (e) { console.error("services: NATS is up but JetStream is not enabled (start nats-server with -js)"); process.exit(1); }
  await nc.close();
}, (e) => { console.error("services: cannot connect to NATS: " + e.message); process.exit(1); });
'
echo "services: PostgreSQL and NATS JetStream are up"
