#!/usr/bin/env bash
# Development Apache Kafka broker without Docker: one JVM in KRaft mode (broker + controller)
# on 127.0.0.1, jars from Maven Central (docker/pom.xml), state under <repo>/.kafka/.
# Linux only (setsid, flock, /proc); on macOS use docker/compose.yml.
#
#   bash docker/kafka.sh start    start detached; return once the broker answers requests
#   bash docker/kafka.sh stop     SIGTERM, wait, SIGKILL after KAFKA_STOP_TIMEOUT
#   bash docker/kafka.sh status   exit 0 when running and healthy, 3 when stopped, 1 when unhealthy
#   bash docker/kafka.sh reset    stop and wipe the data folder (topics, offsets, cluster id)
#   bash docker/kafka.sh logs     tail the broker log
#
# Environment (all optional):
#   KAFKA_PORT=9092                client listener (PLAINTEXT, 127.0.0.1 only)
#   KAFKA_CONTROLLER_PORT=9093     KRaft controller listener
#   KAFKA_DIR=<repo>/.kafka        libs/, data/, logs/, pid file, generated server.properties
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx512m"   KAFKA_JVM_OPTS=extra JVM flags
#   KAFKA_START_TIMEOUT=120        seconds to wait for a healthy broker (first start includes Maven)
#   KAFKA_STOP_TIMEOUT=30          seconds between SIGTERM and SIGKILL
#   KAFKA_CLUSTER_ID               cluster id used when formatting a new data folder (random otherwise)
#   JAVA_HOME, MVN                 which java and which mvn to use
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER_DIR="$ROOT/docker"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DIR="${KAFKA_DIR:-$ROOT/.kafka}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
MVN="${MVN:-mvn}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

LIBS_DIR="$KAFKA_DIR/libs"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
PROPS_FILE="$KAFKA_DIR/server.properties"
SERVER_LOG="$LOG_DIR/server.log"
OUT_LOG="$LOG_DIR/kafka.out"

log() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port_number() {
  [[ "$2" =~ ^[0-9]+$ ]] && (("$2" > 0 && "$2" < 65536)) || die "$1 must be a TCP port number, got '$2'"
}

# The pid file alone is not proof: after a reboot the number may belong to another process.
# Ours is the JVM whose command line names our generated server.properties.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$PROPS_FILE" || return 1
  printf '%s\n' "$pid"
}

# The port a running broker was started with, read back from its generated config, so that
# status/stop/start talk to the broker that is there even when KAFKA_PORT changed since.
running_port() {
  sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:\([0-9]*\)$|\1|p' "$PROPS_FILE" 2>/dev/null
}

tail_logs() {
  local f
  for f in "$OUT_LOG" "$SERVER_LOG"; do
    if [[ -s "$f" ]]; then
      printf -- '----- last lines of %s -----\n' "$f" >&2
      tail -n 30 "$f" >&2
    fi
  done
}

# A real Kafka request, not just an open socket: BrokerApiVersionsCommand bootstraps, reads the
# cluster metadata and sends ApiVersions to every broker listed there. A KRaft broker only
# appears in the metadata once it is registered and unfenced, i.e. able to host partitions.
broker_healthy() {
  port_open "$KAFKA_PORT" || return 1
  local out
  out="$(timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j.configuration="file:$DOCKER_DIR/kafka/log4j-tools.properties" \
    -cp "$LIBS_DIR/*" kafka.admin.BrokerApiVersionsCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" 2>/dev/null)" || return 1
  grep -q "(id: " <<<"$out"
}

# Fetch the broker's jars once per version of docker/pom.xml. The copy goes to a temporary
# folder first so an interrupted download never leaves a half-filled libs/ that looks complete.
ensure_libs() {
  local stamp want
  stamp="$LIBS_DIR/.pom.sha256"
  want="$(sha256sum "$DOCKER_DIR/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v "$MVN" >/dev/null || die "Maven ('$MVN') is needed once to fetch the Kafka jars from Maven Central"
  log "fetching Kafka jars from Maven Central into $LIBS_DIR (once)"
  local tmp="$KAFKA_DIR/libs.tmp"
  rm -rf "$tmp"
  # Maven's output is kept back unless it fails: even with -q it prints stray colour codes.
  if ! "$MVN" -q -B --no-transfer-progress -f "$DOCKER_DIR/pom.xml" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LOG_DIR/maven.log" 2>&1; then
    tail -n 30 "$LOG_DIR/maven.log" >&2
    die "Maven could not fetch the Kafka jars (full output in $LOG_DIR/maven.log)"
  fi
  printf '%s\n' "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
}

write_config() {
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@KAFKA_DATA_DIR@|$DATA_DIR|g" \
    "$DOCKER_DIR/kafka/server.properties" >"$PROPS_FILE"
}

# Kafka's cluster ids are 16 random bytes in unpadded base64url (what `kafka-storage random-uuid`
# prints); generating it here saves a JVM start. Like Kafka's own Uuid.randomUuid(), never one
# that starts with '-': the storage tool's argument parser takes it for an option ("argument
# --cluster-id/-t: expected one argument"); that failed one CI run, and by the alphabet about one
# random id in 64 starts with '-'.
new_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ "$id" != -* ]] && break
  done
  printf '%s' "$id"
}

format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id="${KAFKA_CLUSTER_ID:-$(new_cluster_id)}"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  mkdir -p "$DATA_DIR"
  "$JAVA" -Xmx256m -Dlog4j.configuration="file:$DOCKER_DIR/kafka/log4j-tools.properties" \
    -cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$PROPS_FILE" --ignore-formatted >>"$OUT_LOG" 2>&1 ||
    { tail_logs; die "formatting the storage failed"; }
}

cmd_start() {
  check_port_number KAFKA_PORT "$KAFKA_PORT"
  check_port_number KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  command -v "$JAVA" >/dev/null || die "java not found (Java 17+ is needed; set JAVA_HOME)"
  mkdir -p "$KAFKA_DIR" "$LOG_DIR"

  # Test runners may call start from several processes at once; one of them starts the
  # broker, the others wait here and then find it healthy.
  exec 9>"$KAFKA_DIR/start.lock"
  flock -w "$KAFKA_START_TIMEOUT" 9 || die "another 'kafka.sh start' held the lock for ${KAFKA_START_TIMEOUT}s"

  local started pid
  started="$(now_ms)"
  if pid="$(broker_pid)"; then
    local port
    port="$(running_port)"
    if [[ -n "$port" && "$port" != "$KAFKA_PORT" ]]; then
      die "a broker from $KAFKA_DIR already runs on 127.0.0.1:$port, not $KAFKA_PORT; stop it first or use that port"
    fi
    if broker_healthy; then
      log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "process $pid is up but not answering yet; waiting for it"
  else
    if port_open "$KAFKA_PORT"; then
      die "127.0.0.1:$KAFKA_PORT is already taken by a process this script did not start; set KAFKA_PORT"
    fi
    if port_open "$KAFKA_CONTROLLER_PORT"; then
      die "127.0.0.1:$KAFKA_CONTROLLER_PORT is already taken; set KAFKA_CONTROLLER_PORT"
    fi
    rm -f "$PID_FILE"
    ensure_libs
    write_config
    # One start's JVM output per file, so a failure's tail shows this start, not an older one.
    [[ -f "$OUT_LOG" ]] && mv -f "$OUT_LOG" "$OUT_LOG.1"
    format_storage

    log "starting Kafka on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), logs in $LOG_DIR"
    # setsid + nohup: the broker must outlive the shell, npm script or test runner that
    # started it, and must not receive that terminal's Ctrl-C.
    # shellcheck disable=SC2086 # the *_OPTS variables are word lists on purpose
    setsid nohup "$JAVA" $KAFKA_HEAP_OPTS \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOG_DIR" \
      -Dlog4j.configuration="file:$DOCKER_DIR/kafka/log4j.properties" \
      $KAFKA_JVM_OPTS \
      -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS_FILE" \
      >>"$OUT_LOG" 2>&1 </dev/null 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
  fi

  local deadline=$(($(date +%s) + KAFKA_START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail_logs
      die "the broker exited during start-up (see the log above)"
    fi
    if broker_healthy; then
      log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid) after $(($(now_ms) - started)) ms"
      return 0
    fi
    if (($(date +%s) >= deadline)); then
      tail_logs
      die "the broker (pid $pid) did not become healthy within ${KAFKA_START_TIMEOUT}s; it is left running for inspection, 'bash docker/kafka.sh stop' ends it"
    fi
    sleep 0.5
  done
}

cmd_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(($(date +%s) + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if (($(date +%s) >= deadline)); then
      log "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # A zombie or a slow kernel can keep the pid a moment after SIGKILL.
  while kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]; do sleep 0.1; done
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if ! pid="$(broker_pid)"; then
    echo "kafka: not running"
    return 3
  fi
  KAFKA_PORT="$(running_port)"
  KAFKA_CONTROLLER_PORT="$(sed -n 's|^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$|\1|p' "$PROPS_FILE")"
  if broker_healthy; then
    echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT"
    return 0
  fi
  echo "kafka: process $pid is up but does not answer on 127.0.0.1:$KAFKA_PORT"
  return 1
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR"
  log "wiped $DATA_DIR"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  logs) tail -n "${2:-100}" -F "$SERVER_LOG" ;;
  *)
    echo "usage: bash docker/kafka.sh start|stop|status|reset|logs" >&2
    exit 2
    ;;
esac
