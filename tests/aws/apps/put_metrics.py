"""Test app: puts AverageInferenceTime (with 'Application Name' and 'Device ID' dimensions) ROUNDS times,
INTERVAL seconds apart, with the client API and boto3's resource API, as aws-panorama-sample and debug-server
do. Prints one JSON line: the rounds done, the access key ids its SDK used in order (never a secret), and
boto3's version. usage: put_metrics.py [ROUNDS] [INTERVAL] [NAMESPACE]"""

import json
import sys
import time

import boto3

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
namespace = sys.argv[3] if len(sys.argv) > 3 else "PanoflowTestApp"
session = boto3.Session()
cloudwatch = session.client("cloudwatch")
metric = session.resource("cloudwatch").Metric(namespace, "FramesProcessed")
keys = []
dims = [{"Name": "Application Name", "Value": "aws-panorama-sample"}, {"Name": "Device ID", "Value": "dev-1"}]
for i in range(rounds):
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "AverageInferenceTime", "Value": 10.0 + i, "Unit": "Milliseconds",
         "Dimensions": dims}])
    metric.put_data(MetricData=[{"MetricName": "FramesProcessed", "Value": 150.0, "Unit": "Count",
                                 "Dimensions": dims}])
    key = session.get_credentials().get_frozen_credentials().access_key
    if not keys or keys[-1] != key:
        keys.append(key)
    if interval:
        time.sleep(interval)
print(json.dumps({"rounds": rounds, "access_keys": keys, "boto3": boto3.__version__}))
