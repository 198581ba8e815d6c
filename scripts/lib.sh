# Shared by scripts/up and scripts/test: find or start Redis and PostgreSQL on this machine.
# Sourced, not run. Works on any Debian-like machine; installs from the OS packages where a
# server is missing (as root, or through sudo).

SLUICE_REDIS_HOST=${SLUICE_REDIS_HOST:-127.0.0.1}
SLUICE_REDIS_PORT=${SLUICE_REDIS_PORT:-6379}
SLUICE_PG_HOST=${SLUICE_PG_HOST:-127.0.0.1}
SLUICE_PG_PORT=${SLUICE_PG_PORT:-5432}
SLUICE_STATE_DIR=${SLUICE_STATE_DIR:-$PWD/.sluice}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null || die "cannot install $* (no apt-get); install it and retry"
  say "installing $* from the OS packages"
  if [ -z "${SLUICE_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq >/dev/null
    SLUICE_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_answers() {
  # A TLS-only Redis (a rediss:// URL) is only seen to accept connections; the services say
  # whether they can speak to it.
  if [[ ${SLUICE__REDIS__URL:-} == rediss://* ]]; then
    (exec 3<>"/dev/tcp/$SLUICE_REDIS_HOST/$SLUICE_REDIS_PORT") 2>/dev/null
    return
  fi
  # PING over bash's /dev/tcp, so redis-cli is not required.
  (exec 3<>"/dev/tcp/$SLUICE_REDIS_HOST/$SLUICE_REDIS_PORT" &&
    printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
}

# Whether this script may start a server at HOST:PORT: at the default address, or anywhere when
# SLUICE_START_SERVERS is set (scripts/test sets it; scripts/up only with
# SLUICE_UP_START_SERVERS=1). Elsewhere a server that does not answer is a mistake to report,
# not one to paper over with a throwaway server.
may_start_server() {
  local host=$1 port=$2 default_port=$3
  [ -n "${SLUICE_START_SERVERS:-}" ] && return 0
  [ "$port" = "$default_port" ] && { [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; }
}

# What ensure_redis and ensure_postgres started, for stop_started_servers.
SLUICE_STARTED_REDIS=""
SLUICE_STARTED_POSTGRES=""

ensure_redis() {
  redis_answers && return 0
  may_start_server "$SLUICE_REDIS_HOST" "$SLUICE_REDIS_PORT" 6379 ||
    die "Redis does not answer at $SLUICE_REDIS_HOST:$SLUICE_REDIS_PORT (SLUICE__REDIS__URL); start it or fix the URL (a Redis is started here only at 127.0.0.1:6379, or anywhere with SLUICE_UP_START_SERVERS=1)"
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting redis-server on $SLUICE_REDIS_HOST:$SLUICE_REDIS_PORT"
  mkdir -p "$SLUICE_STATE_DIR/redis"
  redis-server --daemonize yes --bind "$SLUICE_REDIS_HOST" --port "$SLUICE_REDIS_PORT" \
    --save "" --appendonly no --dir "$SLUICE_STATE_DIR/redis" \
    --pidfile "$SLUICE_STATE_DIR/redis/redis-$SLUICE_REDIS_PORT.pid" \
    --logfile "$SLUICE_STATE_DIR/redis/redis.log" >/dev/null
  for _ in $(seq 50); do
    if redis_answers; then
      SLUICE_STARTED_REDIS="$SLUICE_STATE_DIR/redis/redis-$SLUICE_REDIS_PORT.pid"
      return 0
    fi
    sleep 0.1
  done
  die "redis-server did not start; see $SLUICE_STATE_DIR/redis/redis.log"
}

# Stops the Redis and PostgreSQL that ensure_redis and ensure_postgres started, if they did.
stop_started_servers() {
  if [ -n "$SLUICE_STARTED_REDIS" ] && [ -f "$SLUICE_STARTED_REDIS" ]; then
    say "stopping the redis-server started here"
    kill -TERM "$(cat "$SLUICE_STARTED_REDIS")" 2>/dev/null || true
  fi
  if [ -n "$SLUICE_STARTED_POSTGRES" ]; then
    say "stopping PostgreSQL $SLUICE_STARTED_POSTGRES/main, started here"
    as_root pg_ctlcluster --skip-systemctl-redirect "$SLUICE_STARTED_POSTGRES" main stop || true
  fi
}

pg_answers() {
  (exec 3<>"/dev/tcp/$SLUICE_PG_HOST/$SLUICE_PG_PORT") 2>/dev/null
}

psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$SLUICE_PG_HOST" -p "$SLUICE_PG_PORT" -U postgres -d postgres "$@"
}

# Whether test run RUN (a pid) is still going.
test_run_alive() { [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null; }

# drop_test_data [RUN]: what tests left in PostgreSQL and Redis. Their databases and key
# prefixes carry their run's id (sluice_test_<run>_…, test:<run>:…; SLUICE_TEST_RUN, the pid of
# ./scripts/test, or the test process's own): with RUN, that run's; without, every run whose
# process is gone. A run still going, another user's concurrent ./scripts/test, is never touched.
drop_test_data() {
  local only=${1:-} db run
  psql_admin -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'sluice\_test\_%'" |
    while read -r db; do
      [ -n "$db" ] || continue
      run=${db#sluice_test_}
      run=${run%%_*}
      if [ -n "$only" ]; then [ "$run" = "$only" ] || continue
      elif test_run_alive "$run"; then continue; fi
      psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
    done
  command -v redis-cli >/dev/null || return 0
  local redis=(redis-cli -u "$SLUICE_TEST_REDIS_URL")
  "${redis[@]}" --scan --pattern 'test:*' | cut -d: -f2 | sort -u |
    while read -r run; do
      if [ -n "$only" ]; then [ "$run" = "$only" ] || continue
      elif test_run_alive "$run"; then continue; fi
      "${redis[@]}" --scan --pattern "test:$run:*" | xargs -r -n 500 "${redis[@]}" DEL >/dev/null
    done
}

ensure_postgres() {
  if ! pg_answers; then
    may_start_server "$SLUICE_PG_HOST" "$SLUICE_PG_PORT" 5432 ||
      die "PostgreSQL does not answer at $SLUICE_PG_HOST:$SLUICE_PG_PORT (SLUICE__POSTGRES__URL); start it or fix the URL (a PostgreSQL is started here only at 127.0.0.1:5432, or anywhere with SLUICE_UP_START_SERVERS=1)"
    local installed_now=""
    if ! command -v pg_ctlcluster >/dev/null && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      apt_install postgresql
      installed_now=1
    fi
    if command -v pg_lsclusters >/dev/null; then
      local version
      version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
      if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
        say "creating PostgreSQL cluster $version/main (trust authentication on localhost)"
        as_root pg_createcluster "$version" main -p "$SLUICE_PG_PORT" -- --auth-local=trust --auth-host=trust >/dev/null
      elif [ -n "$installed_now" ]; then
        # A cluster the package just created: let the local postgres user in without a password.
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        as_root sed -i -E 's/^(host|local)(\s+all\s+all\s+.*)(scram-sha-256|md5|peer)$/\1\2trust/' "$hba"
      fi
      say "starting PostgreSQL $version/main"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      SLUICE_STARTED_POSTGRES=$version
    else
      die "PostgreSQL is not reachable on $SLUICE_PG_HOST:$SLUICE_PG_PORT and cannot be started here"
    fi
    for _ in $(seq 100); do pg_answers && break; sleep 0.1; done
    pg_answers || die "PostgreSQL did not start on $SLUICE_PG_HOST:$SLUICE_PG_PORT"
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  for _ in $(seq 50); do psql_admin -c 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 0.1; done
  psql_admin -c 'SELECT 1' >/dev/null || die "cannot log in to PostgreSQL as postgres on $SLUICE_PG_HOST:$SLUICE_PG_PORT"
}

ensure_database() {
  local db=$1
  if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    say "creating database $db"
    psql_admin -c "CREATE DATABASE \"$db\""
  fi
}

# A port in [base, base + 10000) that nothing listens on now.
free_port() {
  local base=$1 port
  for _ in $(seq 50); do
    port=$((base + RANDOM % 10000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  die "no free port found in $base-$((base + 9999))"
}

ensure_cargo() {
  command -v cargo >/dev/null || die "cargo is not installed; install a Rust toolchain (rustup) first"
}

# Debian's Chromium and the pinned Playwright (tests/browser/requirements.txt) for the browser
# tests. Playwright drives /usr/bin/chromium; its own browser download is never run.
# Installs the pinned Python packages of a requirements file unless they are there already.
ensure_python_packages() {
  local requirements=$1
  command -v python3 >/dev/null || apt_install python3 python3-pip
  if ! python3 - "$requirements" <<'PY' 2>/dev/null; then
import importlib.metadata as m, pathlib, re, sys
pins = re.findall(r"^([\w-]+)==(\S+)", pathlib.Path(sys.argv[1]).read_text(), re.M)
assert all(m.version(name) == version for name, version in pins)
PY
    python3 -m pip install --quiet -r "$requirements" ||
      python3 -m pip install --quiet --break-system-packages -r "$requirements" ||
      die "cannot install the packages of $requirements"
  fi
}

ensure_browser() {
  command -v chromium >/dev/null || apt_install chromium || die "cannot install chromium"
  # The HTTPS test makes its certificate with openssl.
  command -v openssl >/dev/null || apt_install openssl || die "cannot install openssl"
  ensure_python_packages tests/browser/requirements.txt
}

# A Docker engine answering `docker info`: Debian's docker.io, with dockerd started here (as
# root, log in $SLUICE_STATE_DIR/dockerd.log) when none runs. Sets SLUICE_DOCKERD_STARTED when
# it started one; stop_docker stops that one again.
ensure_docker() {
  command -v dockerd >/dev/null || apt_install docker.io || die "cannot install docker.io"
  command -v docker >/dev/null || die "docker.io installed no docker client"
  docker info >/dev/null 2>&1 && return 0
  mkdir -p "$SLUICE_STATE_DIR"
  say "starting dockerd (log: $SLUICE_STATE_DIR/dockerd.log)"
  as_root setsid dockerd --pidfile "$SLUICE_STATE_DIR/dockerd.pid" \
    >"$SLUICE_STATE_DIR/dockerd.log" 2>&1 </dev/null &
  SLUICE_DOCKERD_STARTED=1
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "dockerd did not start; see $SLUICE_STATE_DIR/dockerd.log"
}

# Stops the dockerd ensure_docker started, waiting up to 30 s for it to exit.
stop_docker() {
  [ -n "${SLUICE_DOCKERD_STARTED:-}" ] || return 0
  local pid
  pid=$(cat "$SLUICE_STATE_DIR/dockerd.pid" 2>/dev/null) || return 0
  say "stopping the dockerd started here (pid $pid)"
  as_root kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  say "dockerd (pid $pid) is still running after 30 s"
}

# Docker Compose as an array, COMPOSE: the v2 plugin when there is one, else Debian's
# docker-compose (v1.29), installed here when neither is.
ensure_compose() {
  if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); return 0; fi
  command -v docker-compose >/dev/null || apt_install docker-compose || die "cannot install docker-compose"
  COMPOSE=(docker-compose)
}
