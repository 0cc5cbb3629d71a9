"""The IAM user both policy benchmarks sign as: 10 attached customer managed
policies of 20 statements each, every statement with a wildcard action list, a
resource pattern and a StringEquals condition; only the last statement of each
policy concerns DescribeClusters."""
import json


def make(iam, account, name="bench"):
    """Creates the user and its policies; answers its new access key (id, secret)."""
    iam.create_user(UserName=name)
    for p in range(10):
        statements = [{"Sid": f"S{p}x{s}", "Effect": "Allow",
                       "Action": [f"ecs:Describe{s}*", "ecs:List*"] if s < 19 else ["ecs:Describe*"],
                       "Resource": f"arn:aws:ecs:*:{account}:cluster/*",
                       "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}}
                      for s in range(20)]
        arn = iam.create_policy(PolicyName=f"p{p}", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]
