#!/usr/bin/env bash
# Installs the system packages vigil's tests and demo need, when missing (Debian/Ubuntu).
# Used by `make setup`, `make test` and .ci/run. Safe to run again: it installs only what is absent.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
python3 -m venv --help >/dev/null 2>&1 && python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
# headless browser for the live-page test (driven by playwright with executable_path)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
# systemd-analyze checks the service unit (tests/integration/test_operations.py)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# InfluxDB 1.x (Debian: 1.6, InfluxQL): the dashboards' queries and the v1 write path are tested
# against a real influxd that the tests start on loopback ports
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need+=(influxdb)
# pdftotext: the report tests read PDFs as a person's viewer would
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
# a TrueType font with Chinese glyphs, embedded in PDF reports (and used by the browser)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
for extra in "$@"; do
  command -v "$extra" >/dev/null 2>&1 || need+=("$extra")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system mosquitto on 1883 where an init system runs; the tests start their own.
# The packaged influxdb service would listen on every interface (:8086): the tests do not need it.
if [[ " ${need[*]} " == *" influxdb "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now influxdb >/dev/null 2>&1 || true
fi
