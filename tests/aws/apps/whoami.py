"""Test app: STS GetCallerIdentity with the credentials its SDK found, and a credentials request with a token
that is not its own (CREDENTIALS_URL and TOKEN from argv: another instance's endpoint). Prints one JSON
line."""

import json
import os
import sys
import urllib.error
import urllib.request

import boto3

out = {"arn": boto3.client("sts").get_caller_identity()["Arn"],
       "access_key": boto3.Session().get_credentials().get_frozen_credentials().access_key}
if len(sys.argv) > 1:
    request = urllib.request.Request(
        sys.argv[1], headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]}
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        out["other_instance"] = 200
    except urllib.error.HTTPError as exc:
        out["other_instance"] = exc.code
print(json.dumps(out))
