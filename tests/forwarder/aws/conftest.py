from tests.forwarder.aws.lambda_env import aws, corpus, env  # noqa: F401  (fixtures)
