"""Test app: calls services panoflow does not serve offline (SQS, Firehose, Secrets Manager, CloudWatch
GetMetricData); each must raise ClientError at once. Prints one JSON line: service -> [error code,
seconds]."""

import datetime
import json
import time

import boto3
from botocore.exceptions import ClientError

calls = {
    "sqs": lambda: boto3.client("sqs").send_message(QueueUrl="https://sqs.us-east-1.amazonaws.com/123456789012/q",
                                                    MessageBody="x"),
    "firehose": lambda: boto3.client("firehose").put_record(DeliveryStreamName="s", Record={"Data": b"x"}),
    "secretsmanager": lambda: boto3.client("secretsmanager").get_secret_value(SecretId="s"),
    "cloudwatch.GetMetricData": lambda: boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "a", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "M"},
                                                      "Period": 60, "Stat": "Sum"}}],
        StartTime=datetime.datetime(2024, 1, 1), EndTime=datetime.datetime(2024, 1, 2)),
}
out = {}
for name, call in calls.items():
    start = time.monotonic()
    try:
        call()
        out[name] = ["no error", 0]
    except ClientError as exc:
        out[name] = [exc.response["Error"]["Code"], round(time.monotonic() - start, 3)]
print(json.dumps(out))
