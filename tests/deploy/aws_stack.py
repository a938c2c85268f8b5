"""deploy/aws/othermail.yaml, loaded, resolved and deployed into moto (shared by the template and
``othermail aws provision`` tests).

moto runs plain CloudFormation only, and only some resource types:

- ``Transform: AWS::LanguageExtensions``: moto does not expand ``Fn::ForEach``; :func:`expand_foreach`
  does it here (``${Id}`` and ``&{Id}`` replaced per item, the transform's documented behaviour).
- ``!If [cond, ..., !Ref AWS::NoValue]`` inside a list: CloudFormation drops the item, moto keeps a
  ``None`` (and its IAM role then crashes on ``None["PolicyName"]``); :func:`moto_drops_novalue_in_lists`
  patches moto's resolver to drop it.
- moto enforces bucket policies, but a statement whose condition it cannot evaluate (it knows no
  ``aws:SecureTransport``, ``aws:SourceAccount``...) counts as an explicit Deny, for Allow statements
  too: the bucket policy would deny every request. :func:`moto_bucket_policies_not_enforced` turns
  that enforcement off; the policy is still stored and read back.
- moto's ``AWS::S3::Bucket`` applies only BucketEncryption and Tags (public access block, ownership
  controls and lifecycle are dropped): the template tests check those properties in the template.
- The types moto's CloudFormation skips with a warning (:data:`MOTO_SKIPPED_TYPES`) are created
  through their own APIs, which moto implements, from the template's resolved properties: the
  property shapes go through botocore's parameter validation and moto's checks (a receipt rule's
  bucket and function must exist), so nothing of the template goes unchecked.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "aws" / "othermail.yaml"
ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:othermail-db-AbCdEf"

#: What moto 5.x's CloudFormation does not implement (it warns and skips them).
MOTO_SKIPPED_TYPES = frozenset(
    {
        "AWS::S3::BucketPolicy",
        "AWS::SES::ReceiptRuleSet",
        "AWS::SES::ReceiptRule",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SES::ConfigurationSet",
        "AWS::SNS::TopicPolicy",
        "AWS::SES::ConfigurationSetEventDestination",
        "AWS::SNS::Subscription",
    }
)

NOVALUE = object()


def load_template() -> dict[str, Any]:
    """The template as plain dicts and lists, short tags (!Ref, !Sub...) in their long form."""
    from cfnlint.decode import decode

    template, matches = decode(str(TEMPLATE))
    assert not matches, [str(m) for m in matches]
    return json.loads(json.dumps(template))


def parameter_values(template: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value (given, else its default); list parameters as lists."""
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        raw = given.get(name, spec.get("Default"))
        if raw is None:
            raise KeyError(f"parameter {name} has no default and was not given")
        raw = str(raw)
        if spec["Type"] == "CommaDelimitedList" or spec["Type"].startswith("List<"):
            values[name] = [] if raw == "" else [item.strip() for item in raw.split(",")]
        else:
            values[name] = raw
    return values


def expand_foreach(template: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Expand the Resources-level ``Fn::ForEach`` loops as AWS::LanguageExtensions does."""
    expanded = json.loads(json.dumps(template))
    expanded.pop("Transform", None)
    resources = expanded["Resources"]
    for key in [k for k in resources if k.startswith("Fn::ForEach::")]:
        identifier, collection, fragment = resources.pop(key)
        items = params[collection["Ref"]] if isinstance(collection, dict) else collection
        for item in items:
            text = json.dumps(fragment)
            text = text.replace("${%s}" % identifier, item)
            text = text.replace("&{%s}" % identifier, re.sub(r"[^A-Za-z0-9]", "", item))
            text = text.replace(json.dumps({"Ref": identifier}), json.dumps(item))
            for logical_id, resource in json.loads(text).items():
                assert logical_id not in resources, f"Fn::ForEach made a duplicate logical id {logical_id}"
                resources[logical_id] = resource
    return expanded


class Resolver:
    """Resolves the intrinsic functions the template uses, given parameter values and what each
    resource's Ref and attributes are."""

    def __init__(
        self,
        template: dict[str, Any],
        params: dict[str, Any],
        pseudo: dict[str, str],
        refs: dict[str, Any],
        attrs: dict[str, Any],
    ) -> None:
        self.template = template
        self.values = {**params, **pseudo, "AWS::NoValue": NOVALUE}
        self.refs = refs
        self.attrs = attrs
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def _ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return self.refs[name]

    def _sub(self, text: str, local: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".")[0] in self.template["Resources"]:
                return str(self.attrs[name])
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                name = arg if isinstance(arg, str) else ".".join(arg)
                return self.attrs[name]
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                return self._sub(arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
            if key == "Fn::Join":
                return arg[0].join(str(x) for x in self.resolve(arg[1]))
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Equals":
                left, right = self.resolve(arg[0]), self.resolve(arg[1])
                return str(left) == str(right)
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            assert not key.startswith("Fn::"), f"the test resolver does not know {key}"
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NOVALUE}

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))


@contextlib.contextmanager
def moto_drops_novalue_in_lists() -> Iterator[None]:
    """CloudFormation removes ``AWS::NoValue`` items from lists; moto 5.x keeps ``None``."""
    import moto.cloudformation.parsing as parsing

    original = parsing.clean_json

    def clean_json(node: Any, resources_map: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (clean_json(x, resources_map) for x in node) if v is not None]
        return original(node, resources_map)

    parsing.clean_json = clean_json
    try:
        yield
    finally:
        parsing.clean_json = original


def moto_bucket_policies_not_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    monkeypatch.setattr(FakeBucket, "get_permission", lambda self, action, resource: PermissionResult.NEUTRAL)


def forwarder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("forwarder/__init__.py", "")
    return buffer.getvalue()


@dataclass
class Stack:
    name: str
    region: str
    template: dict[str, Any]  # Fn::ForEach expanded
    params: dict[str, Any]
    resolver: Resolver
    outputs: dict[str, str]
    physical: dict[str, str]
    skipped_types: set[str] = field(default_factory=set)


def _apply_skipped(
    session: Any, resolver: Resolver, template: dict[str, Any], skipped: set[str], endpoint_url: str | None
) -> None:
    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint_url)

    order = [
        "AWS::S3::BucketPolicy",
        "AWS::SES::ConfigurationSet",
        "AWS::SNS::TopicPolicy",
        "AWS::SES::ConfigurationSetEventDestination",
        "AWS::SNS::Subscription",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SES::ReceiptRuleSet",
        "AWS::SES::ReceiptRule",
    ]
    assert set(order) >= MOTO_SKIPPED_TYPES
    for kind in order:
        if kind not in skipped:
            continue
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != kind:
                continue
            p = resolver.properties(logical_id)
            if kind == "AWS::S3::BucketPolicy":
                client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
            elif kind == "AWS::SES::ConfigurationSet":
                client("sesv2").create_configuration_set(ConfigurationSetName=p["Name"])
            elif kind == "AWS::SNS::TopicPolicy":
                for topic in p["Topics"]:
                    client("sns").set_topic_attributes(
                        TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
                    )
            elif kind == "AWS::SES::ConfigurationSetEventDestination":
                destination = dict(p["EventDestination"])
                destination["SNSDestination"] = destination.pop("SnsDestination")  # the API's spelling
                client("ses").create_configuration_set_event_destination(
                    ConfigurationSetName=p["ConfigurationSetName"], EventDestination=destination
                )
            elif kind == "AWS::SNS::Subscription":
                client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"])
            elif kind == "AWS::Lambda::EventInvokeConfig":
                client("lambda").put_function_event_invoke_config(**p)
            elif kind == "AWS::SES::ReceiptRuleSet":
                client("ses").create_receipt_rule_set(RuleSetName=p["RuleSetName"])
            elif kind == "AWS::SES::ReceiptRule":
                client("ses").create_receipt_rule(**p)


def deploy(
    session: Any,
    *,
    domains: tuple[str, ...] = ("othermail.example", "second.example"),
    stack_name: str = "othermail",
    endpoint_url: str | None = None,
    **given: str,
) -> Stack:
    """Create the stack in moto (in process, or the server at ``endpoint_url``)."""
    region = session.region_name

    def client(name: str) -> Any:
        return session.client(name, endpoint_url=endpoint_url)

    code_bucket = f"othermail-code-{secrets.token_hex(4)}"
    s3 = client("s3")
    if region == "us-east-1":
        s3.create_bucket(Bucket=code_bucket)
    else:
        s3.create_bucket(Bucket=code_bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_object(Bucket=code_bucket, Key="forwarder.zip", Body=forwarder_zip())
    given = {
        "Domains": ",".join(domains),
        "CodeBucket": code_bucket,
        "CodeKey": "forwarder.zip",
        "DatabaseSecretArn": SECRET_ARN.replace("us-east-1", region),
        **given,
    }
    source = load_template()
    params = parameter_values(source, given)
    template = expand_foreach(source, params)
    cloudformation = client("cloudformation")
    with moto_drops_novalue_in_lists(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*not supported by moto's CloudFormation")
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        summaries = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    if described["StackStatus"] != "CREATE_COMPLETE":
        pytest.fail(f"moto did not create the stack: {described['StackStatus']} {described.get('StackStatusReason')}")
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries if r["LogicalResourceId"]}
    # What moto skipped has no entry (its warnings say the same, from whichever thread runs moto).
    skipped = {r["Type"] for logical_id, r in template["Resources"].items() if logical_id not in physical}
    pseudo = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }
    refs: dict[str, Any] = dict(physical)
    resolver = Resolver(template, params, pseudo, refs, {})
    # Refs of the skipped resources: what CloudFormation returns for them (their names).
    refs["ReceiptRuleSet"] = resolver.properties("ReceiptRuleSet")["RuleSetName"]
    refs["ConfigurationSet"] = resolver.properties("ConfigurationSet")["Name"]
    function = client("lambda").get_function(FunctionName=physical["ForwarderFunction"])["Configuration"]
    queue = client("sqs").get_queue_attributes(QueueUrl=physical["DeadLetterQueue"], AttributeNames=["QueueArn"])
    resolver.attrs.update(
        {
            "MailBucket.Arn": f"arn:aws:s3:::{physical['MailBucket']}",
            "ForwarderFunction.Arn": function["FunctionArn"],
            "DeadLetterQueue.Arn": queue["Attributes"]["QueueArn"],
            "ForwarderLogGroup.Arn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{physical['ForwarderLogGroup']}:*",
            "ForwarderRole.Arn": client("iam").get_role(RoleName=physical["ForwarderRole"])["Role"]["Arn"],
        }
    )
    _apply_skipped(session, resolver, template, skipped, endpoint_url)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Stack(stack_name, region, template, params, resolver, outputs, physical, skipped)


def easy_dkim_like_ses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's new domain identities look like real SES's with Easy DKIM.

    SES documents (CreateEmailIdentity, DkimAttributes) that an Easy DKIM domain identity comes
    with three ``Tokens``, signing enabled and status PENDING until the CNAMEs resolve. moto 5.x
    returns no tokens, signing disabled and NOT_STARTED. Only the reported attributes change.
    """
    from moto.ses.models import EmailIdentity

    original = EmailIdentity.__init__

    def init(
        self: Any, email_identity: str, tags: Any, dkim_signing_attributes: Any, configuration_set_name: Any
    ) -> None:
        original(self, email_identity, tags, dkim_signing_attributes, configuration_set_name)
        if self.identity_type == "DOMAIN" and not dkim_signing_attributes:
            self.dkim_attributes = {
                "SigningEnabled": True,
                "Status": "PENDING",
                "Tokens": [secrets.token_hex(16) for _ in range(3)],
                "SigningAttributesOrigin": "AWS_SES",
                "NextSigningKeyLength": "RSA_2048_BIT",
                "CurrentSigningKeyLength": "RSA_2048_BIT",
            }

    monkeypatch.setattr(EmailIdentity, "__init__", init)
