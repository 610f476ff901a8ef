#!/bin/sh
# smokesignal container entrypoint: run one role by name. Configuration is the
# environment only (see shared/settings.py). `exec` makes the service the process
# that receives SIGTERM, so it shuts down gracefully on `docker stop` / pod deletion.
set -eu

here=$(dirname "$0")

usage() {
    cat <<'USAGE'
usage: entrypoint.sh ROLE [ARGS...]

roles:
  etl          Stage 2 workers + outbox relay      python -m services.etl worker
  poller       broadcast poller                    python -m services.poller
  gateway      SSE / REST gateway                  python -m services.gateway
  generator    demo execution generator            python -m services.etl generate
               (default arguments: --rate 2 --count 0)
  migrate      apply database migrations, exit     python -m shared.migrate
  healthcheck  probe the role running in this container (exit 0 = healthy)
  help         this text
USAGE
}

role=${1:-help}
if [ "$#" -gt 0 ]; then shift; fi

case "$role" in
    etl) exec python -m services.etl worker "$@" ;;
    poller) exec python -m services.poller "$@" ;;
    gateway) exec python -m services.gateway "$@" ;;
    generator)
        if [ "$#" -eq 0 ]; then set -- --rate 2 --count 0; fi
        exec python -m services.etl generate "$@"
        ;;
    migrate) exec python -m shared.migrate "$@" ;;
    healthcheck) exec python "$here/healthcheck.py" "$@" ;;
    help | -h | --help) usage ;;
    *)
        echo "entrypoint.sh: unknown role '$role'" >&2
        usage >&2
        exit 64
        ;;
esac
