"""The off-site tests' hands on the S3 test server (moto), through boto3.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the endpoint
from the first argument. Commands:
  setup ENDPOINT BUCKET              IAM user, key and policy (the server's first
                                     unauthenticated requests), then the bucket;
                                     prints "KEY_ID SECRET"
  keys ENDPOINT BUCKET               one object key per line, then "uploads=N"
                                     (multipart uploads in progress)
  put ENDPOINT BUCKET KEY FILE       store FILE under KEY
  get ENDPOINT BUCKET KEY FILE       fetch KEY into FILE
  wait-upload ENDPOINT BUCKET SECS   return once a multipart upload is in
                                     progress (exit 1 after SECS)
"""
import sys
import time

import boto3


def client(endpoint, svc="s3"):
    return boto3.client(svc, endpoint_url=endpoint, region_name="us-east-1")


def main(cmd, endpoint, bucket, *rest):
    if cmd == "setup":
        iam = client(endpoint, "iam")
        iam.create_user(UserName="pgbox")
        k = iam.create_access_key(UserName="pgbox")["AccessKey"]
        iam.put_user_policy(
            UserName="pgbox",
            PolicyName="all",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=k["AccessKeyId"],
            aws_secret_access_key=k["SecretAccessKey"],
        )
        s3.create_bucket(Bucket=bucket)
        print(k["AccessKeyId"], k["SecretAccessKey"])
    elif cmd == "keys":
        s3 = client(endpoint)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                print(o["Key"])
        ups = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        print("uploads=%d" % len(ups))
    elif cmd == "put":
        key, path = rest
        with open(path, "rb") as f:
            client(endpoint).put_object(Bucket=bucket, Key=key, Body=f.read())
    elif cmd == "get":
        key, path = rest
        body = client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
        with open(path, "wb") as f:
            f.write(body)
    elif cmd == "wait-upload":
        s3 = client(endpoint)
        deadline = time.time() + float(rest[0])
        while time.time() < deadline:
            if s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
                print("upload in progress")
                return 0
            time.sleep(0.01)
        return 1
    else:
        raise SystemExit("unknown command " + cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
