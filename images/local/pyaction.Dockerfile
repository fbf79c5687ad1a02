# Local stand-in for cicirello/pyaction:3.11: the python:3.11-slim stand-in plus git, which is what
# the real image adds (it also adds curl, gpg and the GitHub CLI, which no step uses).
ARG PYTHON_STANDIN
FROM ${PYTHON_STANDIN}
ARG REAL_BASE
LABEL io.yoda.stand-in="${REAL_BASE}"
# Debian's current git, as the real image takes it (a pinned version would vanish with updates).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git --version
