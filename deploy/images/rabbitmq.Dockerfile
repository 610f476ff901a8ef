# RabbitMQ 3.10 from Debian bookworm's packages, management and stream plugins on.
# Speaks the official image's contract (RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS,
# data in /var/lib/rabbitmq, ports 5672 / 15672 / 5552).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
# Unpinned: bookworm's security updates replace versions; the package name fixes the major.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_stream \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
COPY --chmod=0755 rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV HOME=/var/lib/rabbitmq \
    RABBITMQ_LOGS=- \
    LANG=C.UTF-8
# The Debian package's system user (its uid is assigned at install time).
# hadolint ignore=DL3066
USER rabbitmq
EXPOSE 5672 15672 5552
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=6 \
    CMD ["rabbitmq-diagnostics", "-q", "check_port_connectivity"]
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
# The server itself, not Debian's su wrapper: PID 1 must get SIGTERM.
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
