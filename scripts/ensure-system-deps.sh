#!/bin/sh
# Installs the real servers and tools the tests and benchmarks run (PostgreSQL, Redis, nginx,
# Prometheus/promtool, wrk) from Debian's packages when they are missing. Idempotent and quiet
# when everything is present. Services are not started by the packages: tests start their own
# instances on free ports in temporary directories.
set -eu

missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$missing postgresql"
need redis-server redis-server
need nginx nginx
need promtool prometheus
need wrk wrk

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tsmesh: missing system packages:$missing" >&2
  echo "tsmesh: install them (Debian: apt-get install$missing) and run again" >&2
  exit 1
fi

echo "tsmesh: installing$missing (Debian packages)" >&2
# Keep the packages' own services from starting: the tests run their own instances.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
