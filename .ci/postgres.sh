#!/usr/bin/env bash
# Makes PostgreSQL server binaries available to the storage tests, so that
# the PostgreSQL conformance suite runs in CI instead of skipping.
#
# The tests (server/storage/postgres/pgtest) start their own throwaway
# server from initdb/pg_ctl found on PATH or in /usr/lib/postgresql/*/bin;
# this script only installs the binaries when they are missing, from the
# distribution's packages. As root, the throwaway server runs as the
# "postgres" user that the package creates.
set -euo pipefail

find_initdb() {
	if command -v initdb >/dev/null 2>&1; then
		command -v initdb
		return 0
	fi
	local f
	for f in /usr/lib/postgresql/*/bin/initdb; do
		if [ -x "$f" ]; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

if initdb=$(find_initdb); then
	echo "postgres.sh: PostgreSQL found: $initdb"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "postgres.sh: PostgreSQL is not installed and installing it needs root" >&2
	exit 1
fi

echo "postgres.sh: installing PostgreSQL from the distribution's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends postgresql

if ! initdb=$(find_initdb); then
	echo "postgres.sh: postgresql installed but initdb not found" >&2
	exit 1
fi
echo "postgres.sh: PostgreSQL installed: $initdb"
