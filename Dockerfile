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
# /var/lib/subsidy: the workers' RocksDB state (a volume in docker-compose.yml, owned by the user)
RUN pip install --no-cache-dir -e . && useradd --system subsidy && install -d -o subsidy /var/lib/subsidy
USER subsidy
ENTRYPOINT ["subsidy"]
