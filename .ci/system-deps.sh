#!/usr/bin/env bash
# Installs the system tools the project needs when they are missing:
# Java 17+ and Maven (to fetch and run the Kafka broker: all that `--runtime`, for make run,
# installs), then for the tests promtool (Debian's prometheus) and Chromium with its
# WebDriver (the wallboard's real-browser test).
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if [ "${1:-}" != "--runtime" ]; then
  command -v promtool >/dev/null || need+=(prometheus)
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
# --no-install-recommends: the prometheus package would otherwise pull node-exporter.
# policy-rc.d keeps the package from starting a Prometheus service we do not want.
own_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  own_policy=1
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ -n "$own_policy" ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
