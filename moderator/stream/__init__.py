"""The Kafka side: the only package that imports faust or aiokafka (agents, sinks, commit, liveness)."""
