FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rules rules
COPY schemas schemas
COPY sinks sinks
COPY streams streams
COPY subsidy subsidy
COPY console console
COPY policy policy
RUN pip install --no-cache-dir -e . && useradd --system subsidy
USER subsidy
ENTRYPOINT ["subsidy"]
