"""Test app: S3 PutObject, GetObject, HeadObject, ListObjectsV2 (with a prefix, a delimiter and pages of 2)
and a key that tries to leave the bucket; prints one JSON line with what it saw. usage: s3_calls.py BUCKET"""

import json
import sys

import boto3
from botocore.exceptions import ClientError

bucket = sys.argv[1]
s3 = boto3.client("s3")
out = {}
for i in range(5):
    s3.put_object(Bucket=bucket, Key=f"snapshots/frame {i}.jpg", Body=b"jpeg" * (i + 1))
s3.put_object(Bucket=bucket, Key="top.txt", Body=b"top")
out["get"] = s3.get_object(Bucket=bucket, Key="snapshots/frame 3.jpg")["Body"].read().decode()
out["head"] = s3.head_object(Bucket=bucket, Key="top.txt")["ContentLength"]
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="snapshots/",
                                                     PaginationConfig={"PageSize": 2})
out["keys"] = [o["Key"] for page in pages for o in page.get("Contents", [])]
top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
out["top"] = [o["Key"] for o in top.get("Contents",
                                        [])] + [p["Prefix"] for p in top.get("CommonPrefixes", [])]
for key in ("../escape.txt", "a/../../escape.txt"):
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        out.setdefault("traversal", []).append("accepted")
    except ClientError as exc:
        out.setdefault("traversal", []).append(exc.response["Error"]["Code"])
try:
    s3.get_object(Bucket=bucket, Key="missing")
except ClientError as exc:
    out["missing"] = exc.response["Error"]["Code"]
try:
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"x" * 4096)
    out["big"] = "accepted"
except ClientError as exc:
    out["big"] = exc.response["Error"]["Code"]
print(json.dumps(out))
