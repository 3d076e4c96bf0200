# CPU image of the memberlens service. The model bundle is not baked in: mount the folder that
# holds it (compose.yaml mounts ./bundles at /bundles) and point MEMBERLENS_BUNDLE at it.
# Every setting comes from MEMBERLENS_* environment variables (see service/settings.py).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app

# torch==2.14.1 comes from PyPI, as every other package: it is the only index CI reaches.
# The image runs it on the CPU.
COPY pyproject.toml constraints.txt README.md ./
COPY data_tools ./data_tools
COPY model ./model
COPY service ./service
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --user-group --no-create-home memberlens

USER 10001:10001
ENV MEMBERLENS_BUNDLE=/bundles/bts \
    MEMBERLENS_HOST=0.0.0.0 \
    MEMBERLENS_PORT=8000 \
    MEMBERLENS_LOG_FORMAT=json \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
VOLUME ["/bundles"]
EXPOSE 8000
# Ready means a model is loaded: /readyz answers 503 until then, /healthz as soon as it runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
# Exec form, so that SIGTERM reaches uvicorn, which then lets requests in flight finish.
CMD ["memberlens", "serve"]
