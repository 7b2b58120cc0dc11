# Lists what the moto sandbox holds through the AWS APIs themselves, as JSON on stdout.
# Run by slipway-sandbox with the virtualenv's Python (boto3 comes with moto).
# moto's /moto-api/data.json cannot serve here: it keeps every object created since the
# last reset, deleted ones included.
import json
import os

import boto3

ENDPOINT = os.environ["SLIPWAY_SANDBOX_ENDPOINT"]


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def pages(client, operation, key, **kwargs):
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


ec2 = client("ec2")
iam = client("iam")
roles = [role["RoleName"] for role in pages(iam, "list_roles", "Roles")]

listing = {
    "s3_buckets": [b["Name"] for b in client("s3").list_buckets().get("Buckets", [])],
    "dynamodb_tables": list(pages(client("dynamodb"), "list_tables", "TableNames")),
    "sqs_queues": [
        url.rsplit("/", 1)[-1]
        for url in pages(client("sqs"), "list_queues", "QueueUrls")
    ],
    "vpcs": [
        {"id": v["VpcId"], "cidr": v["CidrBlock"], "is_default": v.get("IsDefault", False)}
        for v in pages(ec2, "describe_vpcs", "Vpcs")
    ],
    "subnets": [
        {
            "id": s["SubnetId"],
            "vpc_id": s["VpcId"],
            "cidr": s["CidrBlock"],
            "default_for_az": s.get("DefaultForAz", False),
        }
        for s in pages(ec2, "describe_subnets", "Subnets")
    ],
    "security_groups": [
        {"id": g["GroupId"], "name": g["GroupName"], "vpc_id": g.get("VpcId", "")}
        for g in pages(ec2, "describe_security_groups", "SecurityGroups")
    ],
    "iam_roles": roles,
    "iam_policies": [p["PolicyName"] for p in pages(iam, "list_policies", "Policies", Scope="Local")],
    "iam_role_policies": [
        f"{role}/{policy}"
        for role in roles
        for policy in pages(iam, "list_role_policies", "PolicyNames", RoleName=role)
    ],
}
print(json.dumps(listing, indent=1, sort_keys=True))
