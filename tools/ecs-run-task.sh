#!/usr/bin/env bash
# tools/ecs-run-task.sh STACK TASK_DEFINITION [OVERRIDES_FILE] — runs one
# one-off Fargate task of the stack (deploy/cloudformation/moonkeep.yml) to
# its end and exits with its first container's exit code: the release's
# migration (deploy/ecs/migrate-task-definition.json, registered first) and
# deploy/db/create-roles.sh. The task runs in the stack's private subnets
# with the service's security group (the one the database admits), without
# a public address. OVERRIDES_FILE: JSON for `aws ecs run-task --overrides`.
# Prints the task's log lines when it can read them. Needs aws and jq.
set -euo pipefail
stack=${1:?usage: ecs-run-task.sh STACK TASK_DEFINITION [OVERRIDES_FILE]}
task_definition=${2:?usage: ecs-run-task.sh STACK TASK_DEFINITION [OVERRIDES_FILE]}
overrides=${3:-}
# the longest a task may take (a migration that rewrites a big table)
deadline=$((SECONDS + ${TASK_TIMEOUT_S:-3600}))

outputs=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output json)
output() {
  local value
  value=$(jq -r --arg k "$1" '.[] | select(.OutputKey == $k) | .OutputValue' <<<"$outputs")
  [ -n "$value" ] || { echo "ecs-run-task: stack $stack has no output $1" >&2; exit 1; }
  printf '%s' "$value"
}
cluster=$(output ClusterName)
subnets=$(output TaskSubnetIds)
group=$(output TaskSecurityGroupId)

args=(--cluster "$cluster" --launch-type FARGATE --count 1 --task-definition "$task_definition"
      --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$group],assignPublicIp=DISABLED}")
[ -z "$overrides" ] || args+=(--overrides "file://$overrides")
started=$(aws ecs run-task "${args[@]}" --output json)
task=$(jq -r '.tasks[0].taskArn // empty' <<<"$started")
if [ -z "$task" ]; then
  echo "ecs-run-task: $task_definition did not start: $(jq -c '.failures' <<<"$started")" >&2
  exit 1
fi
echo "ecs-run-task: $task ($task_definition) started"

# `aws ecs wait tasks-stopped` gives up after 10 minutes: ask again until the deadline.
until aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$task" 2>/dev/null; do
  aws ecs describe-tasks --cluster "$cluster" --tasks "$task" --query 'tasks[0].lastStatus' --output text >/dev/null
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "ecs-run-task: $task still runs after ${TASK_TIMEOUT_S:-3600} s; left running" >&2
    exit 1
  fi
done
stopped=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" --output json)
code=$(jq -r '.tasks[0].containers[0].exitCode // empty' <<<"$stopped")
container=$(jq -r '.tasks[0].containers[0].name' <<<"$stopped")

# The log lines, from the task definition's awslogs options (best effort:
# the caller may not be allowed to read them).
log=$(aws ecs describe-task-definition --task-definition "$task_definition" --output json 2>/dev/null \
  | jq -r --arg c "$container" '.taskDefinition.containerDefinitions[] | select(.name == $c)
      | .logConfiguration.options | select(. != null) | [.["awslogs-group"], .["awslogs-stream-prefix"]] | @tsv' \
  || true)
if [ -n "$log" ]; then
  group_name=${log%%$'\t'*}
  stream="${log##*$'\t'}/$container/${task##*/}"
  echo "ecs-run-task: log $group_name $stream"
  aws logs get-log-events --log-group-name "$group_name" --log-stream-name "$stream" --start-from-head \
    --query 'events[].message' --output text 2>/dev/null | tr '\t' '\n' || true
fi

if [ "$code" != 0 ]; then
  echo "ecs-run-task: $task ended with exit code ${code:-none}: $(jq -r '.tasks[0].stoppedReason // ""' <<<"$stopped")" >&2
  exit 1
fi
echo "ecs-run-task: $task ended with exit code 0"
