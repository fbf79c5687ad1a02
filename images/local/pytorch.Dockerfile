# Local stand-in for pytorch/pytorch:<torch>-cuda…-runtime: Python 3.11 at /opt/conda/bin/python
# and PATH as in PyTorch's own Dockerfile (docker.Makefile: PYTHON_VERSION 3.11; ENV PATH
# /usr/local/nvidia/bin:/usr/local/cuda/bin:/opt/conda/bin:$PATH), with torch from PyPI (its CUDA
# 12.8 build and CUDA wheels; the real base carries CUDA 12.9 from PyTorch's own index, which this
# machine cannot reach). Built only where the real base cannot be pulled; never pushed anywhere but
# a registry on 127.0.0.1.
ARG ROOTFS
FROM ${ROOTFS}
ARG REAL_BASE
ARG TORCH_VERSION
LABEL io.yoda.stand-in="${REAL_BASE}"
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
    PYTORCH_VERSION=${TORCH_VERSION} \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/conda \
    && /opt/conda/bin/pip install --no-cache-dir --disable-pip-version-check "torch==${TORCH_VERSION}" \
    && python -c "import torch; print('torch', torch.__version__)"
WORKDIR /workspace
