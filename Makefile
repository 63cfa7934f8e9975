# Two commands on a fresh machine (Python 3.11+):
#   make demo   the pipeline on the embedded default: a local Kafka-protocol broker, workers, SQLite ledger
#   make test   the whole test suite, against a real broker and a real PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/subsidy: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test
# as root where apt-get exists; the package lists are fetched first when the cache holds none
APT_INSTALL = DEBIAN_FRONTEND=noninteractive sh -c 'apt-get install -y -qq "$$@" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$$@" >/dev/null; }' apt-install
install: $(BIN)/subsidy

demo: install
	$(BIN)/subsidy demo

test: install
	@# Lint and type checks first, in seconds (configured in pyproject.toml: ruff's rules and import
	@# order everywhere; mypy strict on rules/ and the ledger): an error there fails the run
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# The tests start their own PostgreSQL cluster and Apache Kafka brokers on free loopback ports;
	@# what they run on is installed here where absent: PostgreSQL from Debian's packages, the broker
	@# from Maven Central (streams/apache_kafka), Debian's kcat (an upstream publisher that is not
	@# ours) and chromium (the console's browser test)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "make test: PostgreSQL is not installed; installing it (apt-get install postgresql)"; \
		$(APT_INSTALL) postgresql; }
	@{ command -v chromium && command -v kcat; } >/dev/null || { echo "make test: installing kcat and chromium (apt-get)"; \
		$(APT_INSTALL) chromium fonts-wqy-microhei kcat; }
	$(BIN)/python -c 'from streams.apache_kafka import broker_classpath; broker_classpath(print)'
	@# two processes (pytest-xdist), each with its own PostgreSQL cluster and brokers; the slowest
	@# tests are listed at the end, where the suite's time goes
	$(BIN)/python -m pytest -q -n 2 --durations=15

# Long fault test: 2 x the expected peak for 5 minutes through local workers, random kill -9,
# memory flat and ledger = replay (bench/soak.py; SOAK_ARGS="--minutes 10 --rate 300" etc.).
# Its ledger is on a private PostgreSQL cluster it starts and removes (or $SUBSIDY_BENCH_PG_URL).
.PHONY: soak
soak: install
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || [ -n "$$SUBSIDY_BENCH_PG_URL" ] || \
		{ echo "make soak: PostgreSQL is not installed; installing it (apt-get install postgresql)"; $(APT_INSTALL) postgresql; }
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
