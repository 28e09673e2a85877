# Shared by scripts/influxdb, scripts/prometheus and scripts/victoria-metrics: a server started
# in the background on loopback, its state under .cache/<name>, its pid in a file.
# The caller sets NAME (directory and messages), PACKAGE (Debian), BINARY, PORT, READY_PATH.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${ROOT}/.cache/${NAME}"
PID_FILE="${STATE}/pid"
LOG="${STATE}/server.log"

die() { echo "scripts/${NAME}: $*" >&2; exit 1; }

ensure_installed() {
  command -v "${BINARY}" >/dev/null && return 0
  [[ "$(id -u)" == "0" ]] || die "${BINARY} is not installed and installing it needs root"
  command -v apt-get >/dev/null || die "${BINARY} is not installed and there is no apt-get"
  echo "scripts/${NAME}: installing ${PACKAGE} from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends "${PACKAGE}" >&2
  command -v "${BINARY}" >/dev/null || die "${PACKAGE} installed no ${BINARY}"
}

is_running() {
  [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null
}

answers() {
  python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status < 300 else 1)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code in (401, 403) else 1)  # it answers; it wants credentials
except OSError:
    sys.exit(1)
PY
}

wait_ready() {
  local url="http://127.0.0.1:${PORT}${READY_PATH}"
  for _ in $(seq 1 120); do
    answers "${url}" && return 0
    is_running || die "the server exited: see ${LOG}"
    sleep 0.5
  done
  die "the server does not answer ${url}: see ${LOG}"
}

# launch CMD...: start it detached (its own session, so a Ctrl-C in the caller's terminal does
# not reach it), remember its pid, wait until it answers.
launch() {
  mkdir -p "${STATE}"
  if answers "http://127.0.0.1:${PORT}${READY_PATH}" && ! is_running; then
    die "something else already listens on 127.0.0.1:${PORT}; set ${PORT_VAR} to another port"
  fi
  setsid "$@" >"${LOG}" 2>&1 < /dev/null &
  echo $! >"${PID_FILE}"
  wait_ready
}

halt() {
  is_running || { rm -f "${PID_FILE}"; return 0; }
  local pid
  pid="$(cat "${PID_FILE}")"
  kill "${pid}"
  for _ in $(seq 1 60); do
    kill -0 "${pid}" 2>/dev/null || { rm -f "${PID_FILE}"; return 0; }
    sleep 0.25
  done
  kill -9 "${pid}" 2>/dev/null || true
  rm -f "${PID_FILE}"
}
