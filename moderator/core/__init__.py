"""What decides a verdict, with no Kafka and no ONNX Runtime: pipeline, verdict core, policy, cache, ids,
and the text normaliser the models are trained and served with."""
