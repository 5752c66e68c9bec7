#!/usr/bin/env bash
# deploy/search/dashboards.sh STACK [LOCAL_PORT] — OpenSearch Dashboards of
# the stack's log search domain on http://localhost:LOCAL_PORT/_dashboards
# (default port 9200), with no bastion and no open port: starts the stack's
# tunnel task (a SigV4 proxy that signs requests to the domain with the
# task's role), opens an SSM port-forwarding session to it through ECS
# Exec, and stops the task when the session ends (Ctrl-C).
#
# Needs the AWS CLI v2 with the Session Manager plugin, jq, and an IAM
# identity that may ecs:RunTask the task definition (with iam:PassRole on its
# two roles), ecs:DescribeTasks and ecs:StopTask, and ssm:StartSession on the
# task and the document AWS-StartPortForwardingSession (deploy/README.md,
# "Log search").
set -euo pipefail
stack=${1:?usage: dashboards.sh STACK [LOCAL_PORT]}
port=${2:-9200}

outputs=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output json)
output() {
  local value
  value=$(jq -r --arg k "$1" '.[] | select(.OutputKey == $k) | .OutputValue' <<<"$outputs")
  [ -n "$value" ] || { echo "dashboards: stack $stack has no output $1" >&2; exit 1; }
  printf '%s' "$value"
}
cluster=$(output ClusterName)
task_definition=$(output SearchTunnelTaskDefinition)
subnets=$(output TaskSubnetIds)
group=$(output SearchTunnelSecurityGroupId)

task=$(aws ecs run-task --cluster "$cluster" --launch-type FARGATE --count 1 \
  --task-definition "$task_definition" --enable-execute-command \
  --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$group],assignPublicIp=DISABLED}" \
  --query 'tasks[0].taskArn' --output text)
if [ -z "$task" ] || [ "$task" = None ]; then
  echo "dashboards: the tunnel task did not start" >&2
  exit 1
fi
trap 'aws ecs stop-task --cluster "$cluster" --task "$task" --reason "dashboards.sh ended" >/dev/null' EXIT
echo "dashboards: tunnel task $task starting"
aws ecs wait tasks-running --cluster "$cluster" --tasks "$task"

# ECS Exec's agent starts shortly after the container: wait for it.
for _ in $(seq 1 30); do
  state=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" --output json \
    | jq -r '.tasks[0].containers[0] | [.runtimeId, (.managedAgents[]? | select(.name == "ExecuteCommandAgent") | .lastStatus)] | @tsv')
  runtime=${state%%$'\t'*}
  [ "${state##*$'\t'}" = RUNNING ] && break
  sleep 2
done
[ "${state##*$'\t'}" = RUNNING ] || { echo "dashboards: ECS Exec's agent is not running in $task" >&2; exit 1; }

echo "dashboards: http://localhost:$port/_dashboards (Ctrl-C ends the session and stops the task)"
aws ssm start-session --target "ecs:${cluster}_${task##*/}_${runtime}" \
  --document-name AWS-StartPortForwardingSession \
  --parameters "{\"portNumber\":[\"8080\"],\"localPortNumber\":[\"$port\"]}"
