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
# /var/lib/subsidy: the workers' RocksDB state (a volume in docker-compose.yml, owned by the user);
# a fixed uid, so that the checkpoint key mounted from the host can be given to it (chown 10001)
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 subsidy && install -d -o subsidy /var/lib/subsidy
USER subsidy
ENTRYPOINT ["subsidy"]
