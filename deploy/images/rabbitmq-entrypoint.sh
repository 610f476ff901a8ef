#!/bin/sh
# Writes rabbitmq.conf from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (default
# guest/guest, allowed from other hosts: the container network is the boundary).
set -eu
{
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
} >/etc/rabbitmq/rabbitmq.conf
exec "$@"
