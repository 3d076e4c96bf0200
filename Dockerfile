# CPU image of the memberlens service. The model bundle is not baked in: mount it at /bundle.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY data_tools ./data_tools
COPY model ./model
COPY service ./service
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 memberlens

USER memberlens
ENV MEMBERLENS_BUNDLE=/bundle MEMBERLENS_HOST=0.0.0.0 MEMBERLENS_PORT=8000
EXPOSE 8000
CMD ["memberlens", "serve"]
