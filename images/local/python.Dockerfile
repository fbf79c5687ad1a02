# Local stand-in for python:3.11-slim (Debian bookworm): bookworm's Python 3.11 as a virtual
# environment at /usr/local, so `python`, `python3` and `pip` are /usr/local/bin/…, first on PATH,
# as in the official image (docker-library/python: ENV PATH /usr/local/bin:$PATH). Built only
# where the real base cannot be pulled; never pushed anywhere but a registry on 127.0.0.1.
ARG ROOTFS
FROM ${ROOTFS}
ARG REAL_BASE
LABEL io.yoda.stand-in="${REAL_BASE}"
# The machine's CA bundle (it may trust a TLS proxy), so pip reaches PyPI from inside the build.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /usr/local \
    && /usr/local/bin/python --version \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
CMD ["python3"]
