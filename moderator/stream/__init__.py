"""The Kafka side: the only package that imports faust or aiokafka (batch routes, sinks, commit, liveness)."""
