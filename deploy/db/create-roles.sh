#!/usr/bin/env bash
# deploy/db/create-roles.sh STACK — creates (or updates: it is idempotent)
# moonkeep's database roles in the stack's RDS database: runs
# deploy/db/roles.sql as the master user in the stack's one-off task
# STACK-db-roles (psql in the VPC, the master, app and migrator secrets from
# Secrets Manager), waits for it and exits with its exit code. Once after
# the stack is created, before the first release; again after rotating the
# app or migrator password. deploy/README.md, "Database roles". Needs aws
# and jq, and an identity that may run that task (iam:PassRole on its
# execution role) and read the stack.
set -euo pipefail
stack=${1:?usage: create-roles.sh STACK}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

task_definition=$(aws cloudformation describe-stacks --stack-name "$stack" --output text \
  --query "Stacks[0].Outputs[?OutputKey=='DatabaseRolesTaskDefinition'].OutputValue | [0]")
if [ -z "$task_definition" ] || [ "$task_definition" = None ]; then
  echo "create-roles: stack $stack has no DatabaseRolesTaskDefinition (CreateDatabase=false?):" \
       "run deploy/db/roles.sql against your database by hand" >&2
  exit 1
fi

# The script without its comment lines: run-task's overrides hold 8 KiB.
overrides=$(mktemp)
trap 'rm -f "$overrides"' EXIT
grep -v '^--' "$here/roles.sql" \
  | jq -Rs '{containerOverrides: [{name: "psql", environment: [{name: "ROLES_SQL", value: .}]}]}' >"$overrides"
size=$(wc -c <"$overrides")
if [ "$size" -gt 8192 ]; then
  echo "create-roles: roles.sql makes $size bytes of overrides, more than run-task's 8192" >&2
  exit 1
fi
bash "$here/../../tools/ecs-run-task.sh" "$stack" "$task_definition" "$overrides"
