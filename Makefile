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
install: $(BIN)/subsidy

demo: install
	$(BIN)/subsidy demo

test: install
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@# Debian's chromium drives the console's browser test, kcat is an upstream publisher that is not
	@# ours; tests that need them skip, saying why, where this cannot install them
	@{ command -v chromium && command -v kcat; } >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei kcat >/dev/null; } || true
	$(BIN)/python -m pytest -q

# Long fault test: 2 x the expected peak for 5 minutes through local workers, random kill -9,
# memory flat and ledger = replay (bench/soak.py; SOAK_ARGS="--minutes 10 --rate 300" etc.)
.PHONY: soak
soak: install
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
