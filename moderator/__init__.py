"""moderator: Korean-first content moderation over Kafka."""

__version__ = "0.1.0"
