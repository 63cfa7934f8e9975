"""tansu, the embedded broker of `subsidy up` and `subsidy demo`: the broker (broker.py), the local
worker with tansu's settings (worker.py) and its shims of aiokafka's internals (offsets.py,
fetch_wait.py). Never on the production path; why each exists: README.md."""
