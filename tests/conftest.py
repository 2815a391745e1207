"""Session-wide fixtures: real services (broker, Redis) and tiny real models built in the test session."""

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.models", "tests.fixtures.faults"]
