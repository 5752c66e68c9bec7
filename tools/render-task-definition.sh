#!/usr/bin/env bash
# tools/render-task-definition.sh STACK IMAGE OUT — the release's task
# definition: deploy/ecs/task-definition.json (or $TASK_DEFINITION) with its
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

AWS_REGION=${AWS_REGION:?set AWS_REGION}
# Every value the stack owns comes from its outputs: the names carry the
# stack's name, the ARNs its partition, and the size its parameters.
IMAGE=$image
TASK_FAMILY=$(output TaskDefinitionFamily)
TASK_CPU=$(output TaskCpu)
TASK_MEMORY=$(output TaskMemory)
TASK_ROLE_ARN=$(output TaskRoleArn)
TASK_EXECUTION_ROLE_ARN=$(output TaskExecutionRoleArn)
LOG_GROUP=$(output LogGroupName)
TRUSTED_PROXIES=$(output TrustedProxies)
PUBLIC_URL=$(output ServiceUrl)
MAIL_FROM=$(output MailFrom)
FIREHOSE_STREAM=$(output LogDeliveryStreamName)
JWT_SECRET_ARN=$(output JwtSecretArn)
DATABASE_URL_ARN=$(output DatabaseUrlSecretArn)
MAIL_URL_ARN=$(output MailUrlSecretArn)
export AWS_REGION IMAGE TASK_FAMILY TASK_CPU TASK_MEMORY TASK_ROLE_ARN TASK_EXECUTION_ROLE_ARN LOG_GROUP TRUSTED_PROXIES \
  PUBLIC_URL MAIL_FROM FIREHOSE_STREAM JWT_SECRET_ARN DATABASE_URL_ARN MAIL_URL_ARN
# Only these names are replaced; any other ${...} is left and caught below.
# shellcheck disable=SC2016 # the list is for envsubst, not for the shell
names='${AWS_REGION} ${IMAGE} ${TASK_FAMILY} ${TASK_CPU} ${TASK_MEMORY} ${TASK_ROLE_ARN} ${TASK_EXECUTION_ROLE_ARN} ${LOG_GROUP} ${TRUSTED_PROXIES} ${PUBLIC_URL} ${MAIL_FROM} ${FIREHOSE_STREAM} ${JWT_SECRET_ARN} ${DATABASE_URL_ARN} ${MAIL_URL_ARN}'
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
