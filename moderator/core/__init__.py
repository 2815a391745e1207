"""What decides a verdict, with no Kafka and no ONNX Runtime: pipeline, verdict core, policy, cache, ids."""
