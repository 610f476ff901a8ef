#!/bin/sh
# Print the Secrets smokesignal's Kubernetes manifests reference, with credentials
# generated on the spot. Nothing secret is committed: without these Secrets the pods
# stay in CreateContainerConfigError ("secret ... not found"), which says what is missing.
#
#   deploy/k8s/secrets.sh base       | kubectl apply -f -   # with deploy/k8s/base (or demo)
#   deploy/k8s/secrets.sh production | kubectl apply -f -   # with deploy/k8s/production
#
# Apply once: a second run makes new passwords, which the running PostgreSQL/RabbitMQ
# would not accept. Taken from the environment when set (else generated / empty):
#   GATEWAY_TOKEN      the bearer token of /api/* (generated)
#   OIDC_CLIENT_SECRET the OIDC client secret (empty = a public PKCE client; docs/AUTH.md)
#   INGEST_TOKEN       the HTTP ingest's bearer token (generated)
#   N8N_DATABASE_URL   n8n's database for the n8n source (empty = source off)
#   NAMESPACE          (smokesignal)
# In production the database and broker credentials are the operators' own Secrets
# (CloudNativePG's smokesignal-db-app, the RabbitMQ operator's
# smokesignal-rabbitmq-default-user), so only the application's Secrets are printed.
set -eu

flavour=${1:-}
case "$flavour" in
    base | production) ;;
    *)
        echo "usage: $0 base|production" >&2
        exit 64
        ;;
esac
namespace=${NAMESPACE:-smokesignal}

random() { # 32 random bytes as hex: URL-safe, so it can sit in a connection URL
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

secret() { # name component key=value...
    name=$1 component=$2
    shift 2
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n'
    printf '  name: %s\n  namespace: %s\n' "$name" "$namespace"
    printf '  labels:\n    app.kubernetes.io/name: smokesignal\n'
    printf '    app.kubernetes.io/component: %s\n' "$component"
    printf 'type: Opaque\nstringData:\n'
    for pair in "$@"; do
        printf '  %s: "%s"\n' "${pair%%=*}" "${pair#*=}"
    done
}

secret smokesignal-gateway gateway "GATEWAY_TOKEN=${GATEWAY_TOKEN:-$(random)}" \
    "OIDC_CLIENT_SECRET=${OIDC_CLIENT_SECRET:-}"
secret smokesignal-etl-sources etl \
    "N8N_DATABASE_URL=${N8N_DATABASE_URL:-}" "INGEST_TOKEN=${INGEST_TOKEN:-$(random)}"

if [ "$flavour" = base ]; then
    postgres_password=$(random)
    rabbitmq_password=$(random)
    secret smokesignal-backends backends \
        "DATABASE_URL=postgresql://smokesignal:$postgres_password@postgres:5432/smokesignal" \
        "AMQP_URL=amqp://smokesignal:$rabbitmq_password@rabbitmq:5672/"
    secret postgres-credentials postgres \
        POSTGRES_USER=smokesignal "POSTGRES_PASSWORD=$postgres_password" POSTGRES_DB=smokesignal
    secret rabbitmq-credentials rabbitmq \
        RABBITMQ_DEFAULT_USER=smokesignal "RABBITMQ_DEFAULT_PASS=$rabbitmq_password"
fi
