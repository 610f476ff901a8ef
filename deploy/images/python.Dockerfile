# Python 3.11 from Debian bookworm's packages: a local stand-in for
# python:3.11-slim-bookworm (`python`, `python -m venv` with pip, groupadd/useradd).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
# Unpinned: bookworm's security updates replace versions; the package name fixes the major.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python"]
