from tests.forwarder.hosts.lambda_env import aws, corpus, env  # noqa: F401  (fixtures)
