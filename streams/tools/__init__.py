"""Operators' and upstream engineers' tools around a running pipeline: publish a file of events
(publish.py), follow ids through the topics (trace.py), check or create the topics (topics.py),
compare a ledger with a replay (verify.py)."""
