#!/usr/bin/env bash
# tools/render-task-definition.sh STACK IMAGE OUT — the release's task
# definitions: deploy/ecs/task-definition.json (the service), or
# $TASK_DEFINITION (deploy/ecs/migrate-task-definition.json), with its
# ${...} placeholders filled from the CloudFormation stack's outputs
# (deploy/cloudformation/moonkeep.yml) and the moonkeep container's image set
# to IMAGE. Fails when a placeholder is left unfilled. Used by
# .github/workflows/release.yml; needs aws, jq, envsubst.
set -euo pipefail
stack=${1:?usage: render-task-definition.sh STACK IMAGE OUT}
image=${2:?usage: render-task-definition.sh STACK IMAGE OUT}
out=${3:?usage: render-task-definition.sh STACK IMAGE OUT}
template=${TASK_DEFINITION:-deploy/ecs/task-definition.json}
container=${TASK_CONTAINER:-moonkeep}

outputs=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output json)
output() {
  local value
  value=$(jq -r --arg k "$1" '.[] | select(.OutputKey == $k) | .OutputValue' <<<"$outputs")
  [ -n "$value" ] || { echo "render-task-definition: stack $stack has no output $1" >&2; exit 1; }
  printf '%s' "$value"
}

export AWS_REGION=${AWS_REGION:?set AWS_REGION} IMAGE=$image
# Every value the stack owns comes from its outputs: the names carry the
# stack's name, the ARNs its partition, and the size its parameters.
# placeholder               stack output
stack_owned='
TASK_FAMILY                 TaskDefinitionFamily
TASK_CPU                    TaskCpu
TASK_MEMORY                 TaskMemory
TASK_ROLE_ARN               TaskRoleArn
TASK_EXECUTION_ROLE_ARN     TaskExecutionRoleArn
LOG_GROUP                   LogGroupName
TRUSTED_PROXIES             TrustedProxies
PUBLIC_URL                  ServiceUrl
MAIL_FROM                   MailFrom
FIREHOSE_STREAM             LogDeliveryStreamName
JWT_SECRET_ARN              JwtSecretArn
DATABASE_URL_ARN            DatabaseUrlSecretArn
MAIL_URL_ARN                MailUrlSecretArn
MIGRATION_TASK_FAMILY       MigrationTaskFamily
MIGRATION_EXECUTION_ROLE_ARN MigrationExecutionRoleArn
MIGRATION_DATABASE_URL_ARN  MigrationDatabaseUrlSecretArn
'
# Only these names are replaced; any other ${...} is left and caught below.
# shellcheck disable=SC2016 # the list is for envsubst, not for the shell
names='${AWS_REGION} ${IMAGE}'
while read -r var key; do
  [ -n "$var" ] || continue
  value=$(output "$key")
  export "$var=$value"
  names+=" \${$var}"
done <<<"$stack_owned"
envsubst "$names" <"$template" \
  | jq --arg image "$image" --arg name "$container" \
      '(.containerDefinitions[] | select(.name == $name) | .image) = $image' >"$out"
if grep -n '[$]{' "$out" >&2; then
  echo "render-task-definition: $template has placeholders the stack does not fill (above)" >&2
  exit 1
fi
jq -e --arg name "$container" '[.containerDefinitions[].name] | index($name) != null' "$out" >/dev/null \
  || { echo "render-task-definition: no container named $container in $template" >&2; exit 1; }
echo "render-task-definition: $out (image $image)"
