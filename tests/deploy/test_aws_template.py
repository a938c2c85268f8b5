"""deploy/aws/othermail.yaml, the CloudFormation template of the AWS mode.

- cfn-lint (pinned in the dev extra) passes it, and fails a broken copy (the lint really reads it);
- read with cfn-lint's own loader (short tags understood), its IAM is least privilege: explicit
  actions without wildcards, each one either called by the forwarder's code (found by reading the
  modules the Lambda handler imports) or one of a documented few the platform needs; no "*"
  resource but the one AWS requires for VPC network interfaces;
- the wiring the forwarder depends on: SES may write only under the prefix, only from this
  account's receipt rule; the rule scans, stores, then invokes the function asynchronously; the
  bucket is private, encrypted, expiring; failures land in the dead-letter queue; bounces and
  complaints reach the topic, and through it the function;
- deployed into moto's CloudFormation (with the types moto skips created through their own APIs,
  see tests/deploy/aws_stack.py), the stack exists as written, and the Lambda handler, run with the
  function's environment, makes only calls the deployed role allows on the exact resources.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

import forwarder.hosts.lambda_handler
import migrations
from forwarder.errors import MessageNotFound
from forwarder.settings import Settings
from tests.deploy.aws_stack import (
    ACCOUNT,
    MOTO_SKIPPED_TYPES,
    REPO,
    TEMPLATE,
    Stack,
    deploy,
    expand_foreach,
    load_template,
    moto_bucket_policies_not_enforced,
    parameter_values,
)
from tests.deploy.iam_policy import allowed

REGION = "us-east-1"
ROLE = "ForwarderRole"

#: Actions the role grants that no line of the forwarder calls, and why each is needed.
PLATFORM_ACTIONS = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs with the execution role",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs with the execution role",
    "sqs:SendMessage": "Lambda sends a failed asynchronous event to the on-failure destination with the execution role",
    "s3:ListBucket": "without it S3 answers 403, not 404, for a missing key (MessageNotFound becomes a retry)",
    "kms:Decrypt": "only with DatabaseSecretKmsKeyArn: the secret's customer managed key",
    "ec2:CreateNetworkInterface": "only with SubnetIds: Lambda manages the function's network interfaces",
    "ec2:DescribeNetworkInterfaces": "only with SubnetIds",
    "ec2:DeleteNetworkInterface": "only with SubnetIds",
    "ec2:AssignPrivateIpAddresses": "only with SubnetIds",
    "ec2:UnassignPrivateIpAddresses": "only with SubnetIds",
}
#: AWS services whose clients the forwarder may create (their calls are looked for in the code).
CODE_SERVICES = ("s3", "sesv2", "ses", "secretsmanager", "sqs", "sns", "kms")
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTHERMAIL_"))}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", **extra)
    return env


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    found = {k: v for k, v in template["Resources"].items() if isinstance(v, dict) and v.get("Type") == kind}
    assert found, f"the template has no {kind}"
    return found


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, path + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, path + (str(index),))


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every policy statement anywhere (both branches of each Fn::If, Fn::ForEach fragments)."""
    found = []
    for path, node in walk(template["Resources"]):
        if path and path[-1] in ("PolicyDocument", "AssumeRolePolicyDocument") and isinstance(node, dict):
            for statement in node["Statement"]:
                found.append(("/".join(path), statement))
    return found


def role_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The identity policies of the forwarder's role: its inline ones and the AWS::IAM::Policy
    resources attached to it (the Fn::ForEach ones included)."""
    documents = []
    for path, node in walk(template["Resources"][ROLE]["Properties"]["Policies"]):
        if path and path[-1] == "PolicyDocument":
            documents.append(node)
    for _path, node in walk(template["Resources"]):
        if isinstance(node, dict) and node.get("Type") == "AWS::IAM::Policy":
            assert node["Properties"]["Roles"] == [{"Ref": ROLE}]
            documents.append(node["Properties"]["PolicyDocument"])
    return documents


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------- lint


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("cfn-lint")
    assert executable.exists(), "cfn-lint is missing: pip install -e '.[dev]'"
    return subprocess.run(
        [str(executable), "--", str(path)], capture_output=True, text=True, env=clean_env(), timeout=300
    )


def test_cfn_lint_passes() -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_reads_the_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE.read_text()
        .replace("Runtime: python3.11", "Runtime: python2.6")
        .replace("InvocationType: Event", "InvocationType: Sometimes")
    )
    result = cfn_lint(broken)
    assert result.returncode != 0
    assert "python2.6" in result.stdout and "Sometimes" in result.stdout


# ---------------------------------------------------------------------------------------- IAM


def lambda_modules() -> list[Path]:
    """The project modules the Lambda handler can run: the import closure (imports inside
    functions included) of forwarder.hosts.lambda_handler within the project's packages."""
    seen: set[Path] = set()
    todo = [REPO / "forwarder" / "hosts" / "lambda_handler.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                base = REPO.joinpath(*name.split("."))
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.is_file() and name.split(".")[0] in ("forwarder", "models"):
                        todo.append(candidate)
    return sorted(seen)


def code_actions(modules: list[Path]) -> dict[str, set[str]]:
    """IAM action -> the modules calling it: every ``.method(`` that is an API operation of a
    service in CODE_SERVICES (botocore's models, offline), named by the service's IAM prefix."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    by_method: dict[str, set[str]] = {}
    for service in CODE_SERVICES:
        model = session.get_service_model(service)
        for operation in model.operation_names:
            by_method.setdefault(xform_name(operation), set()).add(f"{model.signing_name}:{operation}")
    found: dict[str, set[str]] = {}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                for action in by_method.get(node.func.attr, ()):
                    found.setdefault(action, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_code_scan_finds_the_forwarders_calls() -> None:
    found = code_actions(lambda_modules())
    assert {"s3:GetObject", "ses:SendEmail", "ses:SendRawEmail", "secretsmanager:GetSecretValue"} <= set(found), found
    assert "forwarder/adapters/aws/s3.py" in found["s3:GetObject"]
    assert "forwarder/adapters/aws/ses.py" in found["ses:SendEmail"]
    assert "forwarder/adapters/aws/secrets.py" in found["secretsmanager:GetSecretValue"]


def test_every_policy_statement_names_explicit_actions(template: dict[str, Any]) -> None:
    found = statements(template)
    assert len(found) >= 10
    for where, statement in found:
        actions = statement["Action"]
        assert isinstance(actions, list) and actions, f"{where}: Action must be an explicit list"
        if statement["Effect"] == "Deny":
            continue  # a broad Deny (s3:* without TLS) only narrows access
        for action in actions:
            assert ACTION.match(action), f"{where}: {action!r} is not one explicit action"
        principal = statement.get("Principal")
        if principal is not None:
            assert principal != "*" and "AWS" not in principal, f"{where}: Allow to {principal}"
            assert set(principal) == {"Service"}


def test_no_allow_statement_has_a_star_resource(template: dict[str, Any]) -> None:
    for where, statement in statements(template):
        if statement["Effect"] != "Allow" or "AssumeRolePolicyDocument" in where:
            continue
        resources = as_list(statement["Resource"])
        if "*" in resources:
            # AWS's requirement: ec2:DescribeNetworkInterfaces has no resource-level permissions,
            # and Lambda's network interfaces are unknown in advance (AWSLambdaVPCAccessExecutionRole).
            assert statement["Sid"] == "ManageNetworkInterfaces", f"{where}: Resource *"
            assert all(a.startswith("ec2:") for a in statement["Action"])
            assert "vpc-network-interfaces" in json.dumps(template["Resources"][ROLE]["Properties"]["Policies"])
        for resource in resources:
            text = json.dumps(resource)
            assert text != '"*"' or statement["Sid"] == "ManageNetworkInterfaces"


def test_the_vpc_permissions_exist_only_with_a_vpc(template: dict[str, Any]) -> None:
    policies = template["Resources"][ROLE]["Properties"]["Policies"]
    vpc = [p for p in policies if "Fn::If" in p and p["Fn::If"][0] == "HasVpc"]
    assert len(vpc) == 1 and vpc[0]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert template["Conditions"]["HasVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "SubnetIds"}]}, ""]}]
    }
    function = template["Resources"]["ForwarderFunction"]["Properties"]
    assert function["VpcConfig"]["Fn::If"][0] == "HasVpc"


def test_the_role_grants_only_what_the_code_and_the_platform_need(template: dict[str, Any]) -> None:
    granted = {a for document in role_policies(template) for s in document["Statement"] for a in s["Action"]}
    from_code = code_actions(lambda_modules())
    unexplained = granted - set(from_code) - set(PLATFORM_ACTIONS)
    assert not unexplained, f"granted, but neither called by the forwarder nor documented: {unexplained}"
    # Every API call of the Lambda's sending and reading path is granted (what the handler really
    # calls is checked against the deployed role in test_the_handler_calls_only_what_the_role_allows).
    for needed in ("s3:GetObject", "ses:SendEmail", "ses:SendRawEmail", "secretsmanager:GetSecretValue"):
        assert needed in granted and needed in from_code


def test_the_role_scopes_each_action_to_its_resource(template: dict[str, Any]) -> None:
    by_action: dict[str, list[str]] = {}
    for document in role_policies(template):
        for statement in document["Statement"]:
            for action in statement["Action"]:
                by_action.setdefault(action, []).extend(json.dumps(r) for r in as_list(statement["Resource"]))
    assert by_action["s3:GetObject"] == [json.dumps({"Fn::Sub": "${MailBucket.Arn}/${MailPrefix}*"})]
    assert by_action["s3:ListBucket"] == [json.dumps({"Fn::GetAtt": ["MailBucket", "Arn"]})]
    assert by_action["sqs:SendMessage"] == [json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})]
    assert by_action["secretsmanager:GetSecretValue"] == [json.dumps({"Ref": "DatabaseSecretArn"})]
    assert by_action["logs:PutLogEvents"] == [json.dumps({"Fn::GetAtt": ["ForwarderLogGroup", "Arn"]})]
    for action in ("ses:SendEmail", "ses:SendRawEmail"):
        assert sorted(by_action[action]) == sorted(
            [
                json.dumps(
                    {
                        "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
                        "configuration-set/${ConfigurationSet}"
                    }
                ),
                json.dumps(
                    {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}"}
                ),
                # only with UserDomains=Enabled, and only identities tagged as users' domains
                # (test_users_domains_are_opt_in_and_reached_by_their_tag)
                json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"}),
            ]
        )
    # SendBounce (issue 12.19): from the domains' identities only, never by configuration set
    assert sorted(by_action["ses:SendBounce"]) == sorted(
        [
            json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}"}),
            json.dumps({"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"}),
        ]
    )
    # Fn::ForEach turns the last one into one exact identity ARN per domain.
    params = parameter_values(
        template,
        {
            "Domains": "a.example,b.example",
            "CodeBucket": "c",
            "CodeKey": "k",
            "DatabaseSecretArn": "arn:aws:secretsmanager:x",
        },
    )
    expanded = expand_foreach(template, params)
    identities = sorted(
        r["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]["Fn::Sub"]
        for r in expanded["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
    )
    assert identities == [
        f"arn:${{AWS::Partition}}:ses:${{AWS::Region}}:${{AWS::AccountId}}:identity/{d}"
        for d in ("a.example", "b.example")
    ]


def test_users_domains_are_opt_in_and_reached_by_their_tag(template: dict[str, Any]) -> None:
    from forwarder.ops.domain_checks import USER_DOMAIN_TAG

    parameter = template["Parameters"]["UserDomains"]
    assert parameter["Default"] == "Disabled" and parameter["AllowedValues"] == ["Enabled", "Disabled"]
    assert template["Conditions"]["AcceptUserDomains"] == {"Fn::Equals": [{"Ref": "UserDomains"}, "Enabled"]}
    policies = template["Resources"][ROLE]["Properties"]["Policies"]
    (optional,) = [p for p in policies if "Fn::If" in p and p["Fn::If"][0] == "AcceptUserDomains"]
    assert optional["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    (statement,) = optional["Fn::If"][1]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["ses:SendEmail", "ses:SendRawEmail", "ses:SendBounce"]
    # exactly the tag the web app puts on the identities it creates for users' domains
    assert statement["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{USER_DOMAIN_TAG['Key']}": USER_DOMAIN_TAG["Value"]}
    }
    # nothing else in the role rests on a condition
    others = [s for d in role_policies(template) for s in d["Statement"] if s is not statement]
    assert all("Condition" not in s or s["Sid"] == "DecryptDatabaseSecret" for s in others)


def test_the_log_group_is_the_functions(template: dict[str, Any]) -> None:
    group = template["Resources"]["ForwarderLogGroup"]["Properties"]
    function = template["Resources"]["ForwarderFunction"]["Properties"]
    assert group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-forwarder"}
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-forwarder"}
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "ForwarderLogGroup"}}
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# ---------------------------------------------------------------------------------------- wiring

RULE_ARN = (
    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
    "receipt-rule-set/${RuleSetName}:receipt-rule/${RuleName}"
)


def test_only_ses_from_this_accounts_rule_may_write_mail(template: dict[str, Any]) -> None:
    policy = template["Resources"]["MailBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "MailBucket"}
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert len(allows) == 1
    allow = allows[0]
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"}
    assert allow["Action"] == ["s3:PutObject"]
    assert allow["Resource"] == {"Fn::Sub": "${MailBucket.Arn}/${MailPrefix}*"}
    assert allow["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"},
            "aws:SourceArn": {"Fn::Sub": RULE_ARN},
        }
    }
    denies = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert denies == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:*"],
            "Resource": [{"Fn::GetAtt": ["MailBucket", "Arn"]}, {"Fn::Sub": "${MailBucket.Arn}/*"}],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    # The names in that ARN are the rule's own.
    rule = template["Resources"]["ReceiptRule"]["Properties"]
    assert rule["RuleSetName"] == {"Ref": "ReceiptRuleSet"}
    assert template["Resources"]["ReceiptRuleSet"]["Properties"]["RuleSetName"] == {"Ref": "RuleSetName"}
    assert rule["Rule"]["Name"] == {"Ref": "RuleName"}


def test_the_receipt_rule_scans_stores_then_invokes(template: dict[str, Any]) -> None:
    resource = template["Resources"]["ReceiptRule"]
    rule = resource["Properties"]["Rule"]
    assert rule["Enabled"] is True and rule["ScanEnabled"] is True
    # the service's domains, or (UserDomains=Enabled) every domain verified in the account
    assert rule["Recipients"] == {"Fn::If": ["AcceptUserDomains", {"Ref": "AWS::NoValue"}, {"Ref": "Domains"}]}
    assert rule["TlsPolicy"] == {"Ref": "TlsPolicy"}
    assert template["Parameters"]["TlsPolicy"]["AllowedValues"] == ["Optional", "Require"]
    first, second = rule["Actions"]
    assert first == {"S3Action": {"BucketName": {"Ref": "MailBucket"}, "ObjectKeyPrefix": {"Ref": "MailPrefix"}}}
    assert second == {
        "LambdaAction": {"FunctionArn": {"Fn::GetAtt": ["ForwarderFunction", "Arn"]}, "InvocationType": "Event"}
    }
    # SES checks its bucket and function permissions when the rule is created.
    assert set(resource["DependsOn"]) == {"MailBucketPolicy", "SesInvokePermission"}
    permission = template["Resources"]["SesInvokePermission"]["Properties"]
    assert permission["Principal"] == "ses.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {"Fn::Sub": RULE_ARN}


def test_the_bucket_is_private_encrypted_and_expiring(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["MailBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == {"Ref": "RetentionDays"}
    assert "Prefix" not in rule and "Filter" not in rule  # every object, the prefix's included
    assert int(template["Parameters"]["RetentionDays"]["Default"]) >= 14  # a replay from the DLQ finds its mail


def test_failed_invocations_go_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    config = template["Resources"]["ForwarderEventInvokeConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "ForwarderFunction"}
    assert config["Qualifier"] == "$LATEST"
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}}
    queue = template["Resources"]["DeadLetterQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    # One dead-letter path, not two (DeadLetterConfig would queue every failure a second time).
    assert "DeadLetterConfig" not in template["Resources"]["ForwarderFunction"]["Properties"]


def test_bounces_and_complaints_reach_the_topic(template: dict[str, Any]) -> None:
    (destination,) = resources_of(template, "AWS::SES::ConfigurationSetEventDestination").values()
    props = destination["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": "ConfigurationSet"}
    event = props["EventDestination"]
    assert event["Enabled"] is True
    assert {"BOUNCE", "COMPLAINT", "REJECT", "DELIVERYDELAY"} <= {t.upper() for t in event["MatchingEventTypes"]}
    assert event["SnsDestination"] == {"TopicARN": {"Ref": "FeedbackTopic"}}
    policy = template["Resources"]["FeedbackTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "FeedbackTopic"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    assert statement["Action"] == ["sns:Publish"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "FeedbackTopicPolicy" in as_list(destination["DependsOn"])


def test_bounces_and_complaints_reach_the_forwarder(template: dict[str, Any]) -> None:
    (subscription,) = resources_of(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "FeedbackTopic"},
        "Protocol": "lambda",
        "Endpoint": {"Fn::GetAtt": ["ForwarderFunction", "Arn"]},
    }
    permissions = resources_of(template, "AWS::Lambda::Permission")
    sns = [p["Properties"] for p in permissions.values() if p["Properties"]["Principal"] == "sns.amazonaws.com"]
    assert sns == [
        {
            "FunctionName": {"Fn::GetAtt": ["ForwarderFunction", "Arn"]},
            "Action": "lambda:InvokeFunction",
            "Principal": "sns.amazonaws.com",
            "SourceArn": {"Ref": "FeedbackTopic"},
        }
    ]
    # no permission lets anyone but the rule and the topic invoke the function
    assert all("SourceArn" in p["Properties"] for p in permissions.values())


def test_the_function_runs_the_forwarder_with_its_settings(template: dict[str, Any]) -> None:
    function = template["Resources"]["ForwarderFunction"]["Properties"]
    assert function["Runtime"] == "python3.11"
    module, _, name = function["Handler"].rpartition(".")
    assert module == forwarder.hosts.lambda_handler.__name__ and callable(getattr(forwarder.hosts.lambda_handler, name))
    assert function["Code"]["S3Bucket"] == {"Ref": "CodeBucket"} and function["Code"]["S3Key"] == {"Ref": "CodeKey"}
    assert function["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    assert function["ReservedConcurrentExecutions"]["Fn::If"][0] == "HasReservedConcurrency"
    variables = function["Environment"]["Variables"]
    assert variables["OTHERMAIL_S3_BUCKET"] == {"Ref": "MailBucket"}
    assert variables["OTHERMAIL_S3_PREFIX"] == {"Ref": "MailPrefix"}
    assert variables["OTHERMAIL_DOMAINS"] == {"Fn::Join": [",", {"Ref": "Domains"}]}
    assert variables["OTHERMAIL_SES_CONFIGURATION_SET"] == {"Ref": "ConfigurationSet"}
    assert variables["OTHERMAIL_SECRETS_ARN"] == {"Ref": "DatabaseSecretArn"}
    assert variables["OTHERMAIL_KEEP_DAYS"] == {"Ref": "RetentionDays"}
    # Every variable is one the forwarder reads (a typo would be silently ignored).
    known = set(re.findall(r'"([A-Z0-9_]+)"', (REPO / "forwarder" / "settings.py").read_text()))
    read = {n for n in variables if n.removeprefix("OTHERMAIL_") in known}
    assert set(variables) - read <= {"OTHERMAIL_SECRETS_ARN"}, set(variables) - read
    # The values parse.
    Settings.from_env(
        {
            "OTHERMAIL_DOMAINS": "a.example",
            "OTHERMAIL_SENDER": variables["OTHERMAIL_SENDER"],
            "OTHERMAIL_SES_API": variables["OTHERMAIL_SES_API"],
        }
    )


def test_parameters_and_outputs(template: dict[str, Any]) -> None:
    assert {"Domains", "DatabaseSecretArn", "RetentionDays", "CodeBucket", "CodeKey", "MailPrefix"} <= set(
        template["Parameters"]
    )
    assert template["Parameters"]["Domains"]["Type"] == "CommaDelimitedList"
    assert re.fullmatch(template["Parameters"]["MailPrefix"]["AllowedPattern"], "inbound/")
    assert not re.fullmatch(template["Parameters"]["MailPrefix"]["AllowedPattern"], "inbound")
    assert {
        "BucketName",
        "FunctionArn",
        "RuleSetName",
        "ConfigurationSetName",
        "FeedbackTopicArn",
        "DeadLetterQueueUrl",
    } <= set(template["Outputs"])
    # `othermail aws provision --rule-set` defaults to the template's default rule set name.
    from forwarder.cli.aws_provision import provision_command

    default = next(p.default for p in provision_command.params if p.name == "rule_set")
    assert default == template["Parameters"]["RuleSetName"]["Default"]


# ---------------------------------------------------------------------------------------- moto


@pytest.fixture
def aws_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_bucket_policies_not_enforced(monkeypatch)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def test_the_stack_creates_in_moto(aws_session: boto3.session.Session) -> None:
    stack = deploy(aws_session)
    # If moto learns one of these types, this fails: drop it from MOTO_SKIPPED_TYPES then.
    assert stack.skipped_types == MOTO_SKIPPED_TYPES
    s3 = aws_session.client("s3")
    bucket = stack.outputs["BucketName"]
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto's AWS::S3::Bucket drops these three (test_the_bucket_is_private_encrypted_and_expiring
    # checks them in the template); should moto apply them, they must be right.
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
    try:
        (expiry,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert expiry["Expiration"]["Days"] == 14 and expiry["Status"] == "Enabled"
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Resource"] == f"arn:aws:s3:::{bucket}/inbound/*"
    assert allow["Condition"]["StringEquals"] == {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:receipt-rule-set/othermail:receipt-rule/forward",
    }

    lam = aws_session.client("lambda")
    function = lam.get_function(FunctionName=stack.outputs["FunctionArn"])["Configuration"]
    assert (function["Runtime"], function["Handler"]) == ("python3.11", "forwarder.hosts.lambda_handler.handler")
    assert (function["MemorySize"], function["Timeout"]) == (512, 120)
    assert function["Environment"]["Variables"]["OTHERMAIL_S3_BUCKET"] == bucket
    invoke = lam.get_function_event_invoke_config(FunctionName=function["FunctionName"])
    assert invoke["MaximumRetryAttempts"] == 2
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == stack.outputs["DeadLetterQueueArn"]
    grants = {
        g["Principal"]["Service"]: g
        for g in json.loads(lam.get_policy(FunctionName=function["FunctionName"])["Policy"])["Statement"]
    }
    assert set(grants) == {"ses.amazonaws.com", "sns.amazonaws.com"}
    conditions = {k.lower(): v for c in grants["ses.amazonaws.com"]["Condition"].values() for k, v in c.items()}
    assert conditions == {
        "aws:sourcearn": allow["Condition"]["StringEquals"]["aws:SourceArn"],
        "aws:sourceaccount": ACCOUNT,
    }
    conditions = {k.lower(): v for c in grants["sns.amazonaws.com"]["Condition"].values() for k, v in c.items()}
    assert conditions == {"aws:sourcearn": stack.outputs["FeedbackTopicArn"]}
    (subscription,) = aws_session.client("sns").list_subscriptions_by_topic(TopicArn=stack.outputs["FeedbackTopicArn"])[
        "Subscriptions"
    ]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("lambda", function["FunctionArn"])

    queue = aws_session.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["DeadLetterQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert queue["MessageRetentionPeriod"] == "1209600" and queue["SqsManagedSseEnabled"] == "true"

    ses = aws_session.client("ses")
    (rule,) = ses.describe_receipt_rule_set(RuleSetName="othermail")["Rules"]
    assert rule["Recipients"] == ["othermail.example", "second.example"] and rule["ScanEnabled"]
    assert [list(a) for a in rule["Actions"]] == [["S3Action"], ["LambdaAction"]]
    assert rule["Actions"][1]["LambdaAction"]["FunctionArn"] == function["FunctionArn"]
    (destination,) = ses.describe_configuration_set(
        ConfigurationSetName="othermail", ConfigurationSetAttributeNames=["eventDestinations"]
    )["EventDestinations"]
    assert destination["SNSDestination"]["TopicARN"] == stack.outputs["FeedbackTopicArn"]

    logs = aws_session.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/othermail-forwarder")
    assert [g["retentionInDays"] for g in logs["logGroups"]] == [30]
    iam = aws_session.client("iam")
    role = stack.physical[ROLE]
    names = set(iam.list_role_policies(RoleName=role)["PolicyNames"])
    assert "forwarder" in names and "vpc-network-interfaces" not in names and "database-secret-key" not in names


def test_the_vpc_variant_creates_in_moto(aws_session: boto3.session.Session) -> None:
    ec2 = aws_session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(VpcId=vpc, GroupName="forwarder", Description="forwarder")["GroupId"]
    stack = deploy(
        aws_session,
        SubnetIds=subnet,
        SecurityGroupIds=group,
        ReservedConcurrency="5",
        DatabaseSecretKmsKeyArn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    lam = aws_session.client("lambda")
    function = lam.get_function(FunctionName=stack.outputs["FunctionArn"])
    assert function["Configuration"]["VpcConfig"]["SubnetIds"] == [subnet]
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 5
    names = set(aws_session.client("iam").list_role_policies(RoleName=stack.physical[ROLE])["PolicyNames"])
    assert {"forwarder", "vpc-network-interfaces", "database-secret-key"} <= names


# ---------------------------------------------------------------------------------------- the handler vs the role


def deployed_role_policies(stack: Stack) -> list[dict[str, Any]]:
    documents = [p["PolicyDocument"] for p in stack.resolver.properties(ROLE)["Policies"]]
    for logical_id, resource in stack.template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(stack.resolver.properties(logical_id)["PolicyDocument"])
    return documents


def resource_arns(service: str, operation: str, params: dict[str, Any], region: str) -> list[str]:
    if service == "s3":
        key = f"/{params['Key']}" if "Key" in params else ""
        return [f"arn:aws:s3:::{params['Bucket']}{key}"]
    if service == "ses" and operation == "SendBounce":
        return [f"arn:aws:ses:{region}:{ACCOUNT}:identity/{params['BounceSender'].rpartition('@')[2]}"]
    if service == "ses":
        sender = params.get("FromEmailAddress") or params["Source"]
        arns = [f"arn:aws:ses:{region}:{ACCOUNT}:identity/{sender.rpartition('@')[2]}"]
        if params.get("ConfigurationSetName"):
            arns.append(f"arn:aws:ses:{region}:{ACCOUNT}:configuration-set/{params['ConfigurationSetName']}")
        return arns
    if service == "secretsmanager":
        return [params["SecretId"]]
    raise AssertionError(f"the forwarder called {service}:{operation}, which this test cannot place")


def answer_send_bounce(model: Any, **_: Any) -> Any:
    """moto 5 does not implement SendBounce: answer it as SES would (botocore has validated the
    parameters by then)."""
    from botocore.awsrequest import AWSResponse

    return AWSResponse("https://email.us-east-1.amazonaws.com/", 200, {}, None), {"MessageId": "bounce-1"}


@pytest.mark.parametrize("ses_api", ["v2", "v1"])
def test_the_handler_calls_only_what_the_role_allows(
    aws_session: boto3.session.Session, tmp_path: Path, ses_api: str
) -> None:
    from moto.ses.models import ses_backends

    from forwarder.adapters.aws.secrets import environ_with_secrets
    from forwarder.cli.aws_provision import provision
    from forwarder.hosts.lambda_handler import LambdaRuntime
    from tests.forwarder.hosts.lambda_env import Env, ses_event

    database_url = f"sqlite:///{tmp_path / 'othermail.db'}"
    secret = aws_session.client("secretsmanager").create_secret(
        Name="othermail-db", SecretString=json.dumps({"OTHERMAIL_DATABASE_URL": database_url})
    )
    stack = deploy(aws_session, DatabaseSecretArn=secret["ARN"])
    provision(
        aws_session.client("ses"),
        aws_session.client("sesv2"),
        domains=stack.params["Domains"],
        rule_set="othermail",
        region=REGION,
        echo=lambda line: None,
    )
    variables = dict(stack.resolver.properties("ForwarderFunction")["Environment"]["Variables"])
    variables.update(OTHERMAIL_SES_API=ses_api, AWS_REGION=REGION)  # Lambda sets AWS_REGION

    migrations.upgrade(database_url)

    calls: list[tuple[str, str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.service_model.signing_name, model.name, dict(params)))

    session = boto3.session.Session(region_name=REGION)
    session.events.register("before-parameter-build", record)
    session.events.register("before-call.ses.SendBounce", answer_send_bounce)  # moto 5 lacks SendBounce
    # What the handler does at cold start: the secret laid over the function's environment.
    settings = Settings.from_env(environ_with_secrets(variables, session=session))
    assert (settings.ses_configuration_set, settings.s3_prefix) == ("othermail", "inbound/")
    assert settings.database_url == database_url
    env = Env(aws_session, database_url, settings)
    env.alias("shop@othermail.example", "me@destination.example")
    env.alias("news@second.example", "me@destination.example")
    env.alias("old@othermail.example", "me@destination.example", expired_action="reject", max_messages=0)
    runtime = LambdaRuntime.from_settings(settings, session=session)
    try:
        raw = (
            b"From: Shop <shop@store.example>\r\nTo: shop@othermail.example, news@second.example\r\n"
            b"Subject: hello\r\nMessage-ID: <1@store.example>\r\n\r\nbody\r\n"
        )
        aws_session.client("s3").put_object(Bucket=settings.s3_bucket, Key="inbound/msg-1", Body=raw)
        result = runtime.handle(ses_event("msg-1", "shop@othermail.example", "news@second.example"))
        assert result["outcomes"] == {"forwarded": 2}, result
        # an expired alias whose owner chose reject: an SES bounce (issue 12.19)
        aws_session.client("s3").put_object(Bucket=settings.s3_bucket, Key="inbound/msg-old", Body=raw)
        assert runtime.handle(ses_event("msg-old", "old@othermail.example"))["outcomes"] == {"bounced-expired": 1}
        with pytest.raises(MessageNotFound):  # reported missing (on AWS that needs s3:ListBucket)
            runtime.handle(ses_event("msg-gone", "shop@othermail.example"))
    finally:
        runtime.close()
    assert len(ses_backends[ACCOUNT][REGION].sent_messages) == 2

    documents = deployed_role_policies(stack)
    made = {(service, operation) for service, operation, _ in calls}
    assert ("s3", "GetObject") in made and ("secretsmanager", "GetSecretValue") in made
    assert ("ses", "SendEmail" if ses_api == "v2" else "SendRawEmail") in made
    assert ("ses", "SendBounce") in made
    for service, operation, params in calls:
        for arn in resource_arns(service, operation, params, REGION):
            assert allowed(documents, f"{service}:{operation}", arn), f"the role denies {service}:{operation} on {arn}"
    # Nothing granted goes unused, but what the platform uses and the two SES send actions (SESv2's
    # raw SendEmail needs ses:SendRawEmail too, and OTHERMAIL_SES_API may pick either API).
    granted = {a for document in documents for statement in document["Statement"] for a in statement["Action"]}
    unused = granted - {f"{s}:{o}" for s, o in made} - set(PLATFORM_ACTIONS) - {"ses:SendEmail", "ses:SendRawEmail"}
    assert not unused, f"granted but never called by the handler: {unused}"
    # And it would deny what the forwarder must not do.
    assert not allowed(documents, "ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/elsewhere.example")
    assert not allowed(documents, "s3:GetObject", f"arn:aws:s3:::{settings.s3_bucket}/other/key")
    assert not allowed(documents, "s3:PutObject", f"arn:aws:s3:::{settings.s3_bucket}/inbound/x")


def test_with_user_domains_the_rule_takes_every_domain_and_the_role_sends_as_tagged_ones(
    aws_session: boto3.session.Session, tmp_path: Path
) -> None:
    from moto.ses.models import ses_backends

    from forwarder.cli.aws_provision import provision
    from forwarder.hosts.lambda_handler import LambdaRuntime
    from forwarder.ops.domain_checks import create_identity
    from models import Alias, Destination, User, UserDomain, make_engine, make_session_factory, utcnow
    from tests.forwarder.hosts.lambda_env import ses_event

    database_url = f"sqlite:///{tmp_path / 'othermail.db'}"
    stack = deploy(aws_session, UserDomains="Enabled")
    provision(
        aws_session.client("ses"),
        aws_session.client("sesv2"),
        domains=stack.params["Domains"],
        rule_set="othermail",
        region=REGION,
        echo=lambda line: None,
    )
    (rule,) = aws_session.client("ses").describe_receipt_rule_set(RuleSetName="othermail")["Rules"]
    assert not rule.get("Recipients")  # SES: every domain verified in the account
    names = set(aws_session.client("iam").list_role_policies(RoleName=stack.physical[ROLE])["PolicyNames"])
    assert "user-domains" in names

    # what the web app does when a user adds ann.test (web/services/domains.py)
    sesv2 = aws_session.client("sesv2")
    create_identity(sesv2, "ann.test")
    sesv2.create_email_identity(EmailIdentity="operators.example")  # not a user's: no tag
    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        user = User(email="ann@example.org")
        db.add(user)
        db.flush()
        home = Destination(user_id=user.id, email="home@example.org", verified_at=utcnow())
        db.add_all([home, UserDomain(user_id=user.id, name="ann.test", verification_token="t", status="verified")])
        alias = Alias(address="shop@ann.test", user_id=user.id)
        alias.destinations.append(home)
        db.add(alias)
        db.commit()
    engine.dispose()

    variables = dict(stack.resolver.properties("ForwarderFunction")["Environment"]["Variables"])
    variables.update(AWS_REGION=REGION, OTHERMAIL_DATABASE_URL=database_url)
    calls: list[tuple[str, str, dict[str, Any]]] = []
    session = boto3.session.Session(region_name=REGION)
    session.events.register(
        "before-parameter-build",
        lambda params, model, **_: calls.append((model.service_model.signing_name, model.name, dict(params))),
    )
    runtime = LambdaRuntime.from_settings(Settings.from_env(variables), session=session)
    try:
        raw = (
            b"From: Shop <news@store.example>\r\nTo: shop@ann.test\r\nSubject: hello\r\n"
            b"Message-ID: <2@store.example>\r\n\r\nbody\r\n"
        )
        aws_session.client("s3").put_object(Bucket=stack.outputs["BucketName"], Key="inbound/msg-2", Body=raw)
        result = runtime.handle(ses_event("msg-2", "shop@ann.test"))
        assert result["outcomes"] == {"forwarded": 1}, result
    finally:
        runtime.close()
    assert len(ses_backends[ACCOUNT][REGION].sent_messages) == 1

    documents = deployed_role_policies(stack)
    sends = [(s, o, p) for s, o, p in calls if s == "ses"]
    assert sends
    for service, operation, params in sends:
        for arn in resource_arns(service, operation, params, REGION):
            identity = arn.rpartition("identity/")[2]
            tags = (
                {t["Key"]: t["Value"] for t in sesv2.get_email_identity(EmailIdentity=identity).get("Tags", [])}
                if ":identity/" in arn
                else {}
            )
            assert allowed(documents, f"{service}:{operation}", arn, tags), f"the role denies {operation} on {arn}"
    assert any(arn.endswith(":identity/ann.test") for s, o, p in sends for arn in resource_arns(s, o, p, REGION))
    # an identity without the tag (the operator's own, another service's) stays out of reach
    other = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/operators.example"
    assert not allowed(documents, "ses:SendEmail", other, {})
    assert not allowed(documents, "ses:SendEmail", other, {"othermail": "something-else"})
