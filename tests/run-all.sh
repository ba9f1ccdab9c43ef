#!/bin/bash
# The project's single test command (CI runs it through .ci/run):
#
#   sudo bash tests/run-all.sh [--quick] [--no-deps]
#
#   1. tools/install-deps.sh                        (skipped by --no-deps)
#   2. build/       meson setup -Dwerror=true, ninja
#   3. the real mail stack (tests/stack/mailstack.sh) in a temporary directory
#   4. meson test under xvfb-run + dbus-run-session, every suite
#   5. build-asan/  -Db_sanitize=address,undefined, every suite but `slow` and
#                   `gui`                           (skipped by --quick);
#                   a test that failed only because LeakSanitizer's own
#                   tracer crashed at a process's exit runs once more, said
#                   in the log and the summary
#   6. a summary per build, then the total as the very last line:
#        N passed, N failed, N skipped
#
# Exits non-zero if anything failed (a build that fails or a meson run that
# does not finish counts as a failure) or if no test ran at all.  Whatever
# happens, the mail stack and every process the tests left behind (gpg-agent,
# dbus-daemon, Xvfb, ...) are stopped.
#
# Environment: SM_BUILD_DIR / SM_ASAN_BUILD_DIR (default build, build-asan);
# SM_STACK_*_PORT to pin the stack's ports (otherwise the first free block of
# 10143/10993/10024/10025/10587 + k*1000 is used).  Tests read the SM_TEST_*
# variables printed by `tests/stack/mailstack.sh env DIR` (see
# tests/stack/README.md).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

quick=0 deps=1
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --no-deps) deps=0 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-all: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

BUILD=${SM_BUILD_DIR:-build}
ASAN_BUILD=${SM_ASAN_BUILD_DIR:-build-asan}
STACK=$ROOT/tests/stack/mailstack.sh
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

T=$(mktemp -d /tmp/sm-run-all.XXXXXX) || exit 1
chmod 755 "$T"             # the stack delivers mail as user nobody below it
# Every process started from here on carries this marker in its environment;
# cleanup stops whatever still carries it (gpg-agents, dbus, Xvfb, ...).
export SM_RUN_ALL_ID=$T

t0=$SECONDS
pass=0 fail=0 skip=0
summaries=()
child=""
stack_started=0
finished=0

say() { printf '== %s [%ds]\n' "$*" $((SECONDS - t0)); }

# Run a command in the background and wait for it, so that a signal to this
# script is handled at once rather than after the command ends.
run() {
  "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=""
  return $rc
}

marked_pids() {
  ( unset SM_RUN_ALL_ID   # so that grep and awk do not match themselves
    grep -lzxF "SM_RUN_ALL_ID=$T" /proc/[0-9]*/environ 2>/dev/null \
      | awk -F/ -v self=$$ '$3 != self { print $3 }' )
}

alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# The tests' HOME, XDG_RUNTIME_DIR and TMPDIR, new for each meson test run.
stop_home_agents() {
  if [ -d "$T/home/.gnupg" ]; then
    GNUPGHOME=$T/home/.gnupg gpgconf --kill all >/dev/null 2>&1 || true
  fi
}
fresh_home() {
  stop_home_agents
  rm -rf "$T/home" "$T/run" "$T/tmp"
  mkdir -p -m 700 "$T/home" "$T/run"
  mkdir -p -m 1777 "$T/tmp"
}

cleaned=0
cleanup() {
  [ $cleaned = 1 ] && return
  cleaned=1
  if [ -n "$child" ] && alive "$child"; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
    child=""
  fi
  if [ $stack_started = 1 ]; then
    say "stopping the mail stack"
    bash "$STACK" stop "$T/mail" || true
    stack_started=0
  fi
  stop_home_agents
  local pids p _ left
  pids=$(marked_pids)
  if [ -n "$pids" ]; then
    echo "run-all: stopping processes the tests left behind:" >&2
    for p in $pids; do echo "  $p $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-100)" >&2; done
    kill $pids 2>/dev/null
    for _ in $(seq 50); do
      left=""
      for p in $pids; do alive "$p" && left="$left $p"; done
      [ -z "$left" ] && break
      sleep 0.1
    done
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
  fi
  rm -rf "$T"
}

finish() {
  [ $finished = 1 ] && return
  finished=1
  cleanup
  echo
  echo "== summary ($((SECONDS - t0)) s)"
  local s
  for s in "${summaries[@]}"; do echo "$s"; done
  local rc=0
  if [ $fail -gt 0 ]; then
    rc=1
  elif [ $((pass + fail)) -eq 0 ]; then
    echo "run-all: no test ran"
    rc=1
  fi
  echo "$pass passed, $fail failed, $skip skipped"
  exit $rc
}

trap 'cleanup' EXIT
trap 'echo "run-all: interrupted" >&2; fail=$((fail + 1)); summaries+=("interrupted: counted as 1 failure"); finish' INT TERM HUP

add_failure() { # LABEL MESSAGE
  echo "run-all: FAILED: $2" >&2
  fail=$((fail + 1))
  summaries+=("$1: $2 (counted as 1 failure)")
}

# TESTLOG -> "pass fail skip" on the first line, then the names of failed
# tests whose output shows LeakSanitizer's own tracer crashing ("Tracer caught
# signal 11 ... LeakSanitizer has encountered a fatal error") and nothing else
# wrong: no leak report, no AddressSanitizer or UBSan error, no failed or
# bailed-out TAP subtest.  That is a rare fault of the sanitizer runtime at a
# process's exit (CI saw it once, at a test program's exit), not of the code
# under test.  Failed test names on stderr.  Prints nothing and fails when
# the log cannot be read whole, so that nothing is re-run on a guess.
count_results() { # TESTLOG
  $PY - "$1" <<'EOF'
import json, sys
p = f = s = 0
crashed = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.strip()
    if not line:
        continue
    t = json.loads(line)
    r = t.get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:   # FAIL, TIMEOUT, UNEXPECTEDPASS, ERROR, or anything unknown
        f += 1
        print(f"  {r}: {t.get('name')}", file=sys.stderr)
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        if (r in ("FAIL", "ERROR")
                and "LeakSanitizer has encountered a fatal error" in out and "Tracer caught signal" in out
                and "detected memory leaks" not in out and "ERROR: AddressSanitizer" not in out
                and "runtime error:" not in out and "Bail out!" not in out
                and not any(l.startswith("not ok") for l in out.splitlines())):
            crashed.append(t["name"].split(" / ", 1)[-1])
print(p, f, s)
for name in crashed:
    print(name)
EOF
}

setup_build() { # DIR OPTIONS...
  local dir=$1; shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    run meson setup --wipe "$dir" "$@" && return 0
    echo "run-all: meson setup --wipe failed; configuring $dir from scratch" >&2
    rm -rf "$dir"
  fi
  run meson setup "$dir" "$@"
}

configure_and_build() { # DIR SETUP-OPTIONS...
  local dir=$1
  say "$dir: meson setup ${*:2}"
  if ! setup_build "$@"; then
    add_failure "$dir" "meson setup failed"; return 1
  fi
  say "$dir: ninja -C $dir"
  if ! run ninja -C "$dir"; then
    add_failure "$dir" "build failed"; return 1
  fi
}

# `meson test` in DIR with the tests' environment, under Xvfb and a private
# session bus.  TMPDIR inside $T: what the tests (and xvfb-run, if killed)
# leave there goes too.
meson_test() { # DIR [VAR=VALUE...] -- [MESON-TEST-OPTIONS...]
  local dir=$1; shift
  local extra_env=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do extra_env+=("$1"); shift; done
  shift
  run env -u DBUS_SESSION_BUS_ADDRESS \
    HOME="$T/home" XDG_RUNTIME_DIR="$T/run" TMPDIR="$T/tmp" \
    XDG_CONFIG_HOME="$T/home/.config" XDG_DATA_HOME="$T/home/.local/share" XDG_CACHE_HOME="$T/home/.cache" \
    NO_AT_BRIDGE=1 "${extra_env[@]}" \
    xvfb-run -a -e "$T/xvfb.log" -s "-screen 0 1280x1024x24" \
    dbus-run-session -- \
    meson test -C "$dir" --print-errorlogs "$@"
}

test_build() { # DIR [VAR=VALUE...] -- [MESON-TEST-OPTIONS...]
  local dir=$1; shift
  local extra_env=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do extra_env+=("$1"); shift; done
  shift
  local log="$dir/meson-logs/testlog.json" rc p=0 f=0 s=0 label=$dir
  rm -f "$log"
  fresh_home
  say "$dir: meson test $*"
  meson_test "$dir" "${extra_env[@]}" -- --num-processes 2 "$@"
  rc=$?
  local results="" crashed=""
  if [ -f "$log" ] && results=$(count_results "$log"); then
    read -r p f s <<<"$(head -n1 <<<"$results")"
    crashed=$(tail -n +2 <<<"$results")
  fi
  if [ -n "$crashed" ]; then
    # Run those once more, on their own; what that run says is their result
    # (a skip counts as a failure there).
    local rp=0 rf=0 rs=0 n rerun=""
    n=$(printf '%s\n' "$crashed" | wc -l)
    say "$dir: LeakSanitizer's tracer crashed in:" $crashed "- running them once more"
    mv "$log" "$log.first"
    fresh_home
    meson_test "$dir" "${extra_env[@]}" -- --no-rebuild "$@" $crashed
    local rerun_rc=$?
    if [ -f "$log" ] && rerun=$(count_results "$log"); then
      read -r rp rf rs <<<"$(head -n1 <<<"$rerun")"
    fi
    # Whatever did not pass on the second run (not run, failed, skipped,
    # a log that cannot be read) is a failure.
    [ $((rp + rf + rs)) -eq "$n" ] || { rp=0 rf=$n rs=0; }
    f=$((f - n + rf + rs)) p=$((p + rp))
    if [ "$f" -gt 0 ]; then rc=1; else rc=$rerun_rc; fi
    label="$dir ($n run again after a LeakSanitizer tracer crash: $rp passed, $((rf + rs)) failed)"
  fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    # meson itself, xvfb-run or dbus-run-session failed, not a test.
    [ -s "$T/xvfb.log" ] && cat "$T/xvfb.log" >&2
    f=1
    label="$dir (meson test exited with $rc but no test failed: counted as 1 failure)"
  fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  summaries+=("$label: $p passed, $f failed, $s skipped")
  say "$dir: $p passed, $f failed, $s skipped"
}

pick_ports() {
  # Honour explicit SM_STACK_*_PORT; otherwise take the first free block so
  # that two runs on one machine (or a developer's own stack) do not collide.
  # The OAuth2 server port (opt-in for mailstack.sh) is always part of a
  # run-all.sh stack, so the OAuth2 tests run rather than skip.
  if [ -n "${SM_STACK_IMAP_PORT:-}${SM_STACK_IMAPS_PORT:-}${SM_STACK_LMTP_PORT:-}${SM_STACK_SMTP_PORT:-}${SM_STACK_SUBMISSION_PORT:-}" ]; then
    export SM_STACK_OAUTH2_PORT=${SM_STACK_OAUTH2_PORT:-$(( ${SM_STACK_IMAP_PORT:-10143} + 457 ))}
    return 0
  fi
  local off p ok
  for off in 0 1000 2000 3000 4000 5000 6000 7000 8000 9000; do
    ok=1
    for p in 10143 10993 10024 10025 10587 10588 10600; do
      if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$((p + off))" 2>/dev/null; then ok=0; break; fi
    done
    if [ $ok = 1 ]; then
      export SM_STACK_IMAP_PORT=$((10143 + off)) SM_STACK_IMAPS_PORT=$((10993 + off))
      export SM_STACK_LMTP_PORT=$((10024 + off)) SM_STACK_SMTP_PORT=$((10025 + off))
      export SM_STACK_SUBMISSION_PORT=$((10587 + off)) SM_STACK_OAUTH2_PORT=$((10600 + off))
      return 0
    fi
  done
  return 0   # none free: mailstack.sh start says which ports are taken
}

# 1. dependencies
if [ $deps = 1 ]; then
  say "installing dependencies"
  if ! run bash "$ROOT/tools/install-deps.sh"; then
    add_failure deps "tools/install-deps.sh failed"
    finish
  fi
fi

# 2. the main build
built=0
configure_and_build "$BUILD" -Dwerror=true && built=1

# 3. the mail stack
pick_ports
say "starting the mail stack"
stack_started=1   # from here on, cleanup stops whatever part of it started
if ! run bash "$STACK" start "$T/mail"; then
  add_failure stack "tests/stack/mailstack.sh start failed"
  finish
fi
eval "$(bash "$STACK" env "$T/mail")"

# 4. every suite of the main build
[ $built = 1 ] && test_build "$BUILD" --

# 5. ASan + UBSan build, without the slow and GUI suites
if [ $quick = 0 ]; then
  # Not G_SLICE=always-malloc: with it, LeakSanitizer reports per-thread
  # allocations of GLib/GIO/libsecret worker threads (GTask pool threads that
  # are still parked at exit) as leaks in every process that used a worker
  # thread: the proxy after a login, the certstore CLI after gpgme calls.
  # Leaks of our own g_malloc'ed memory are still reported.
  asan_env=(UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1
            G_DEBUG=gc-friendly)
  if [ -f "$ROOT/tests/lsan.supp" ]; then
    asan_env+=("LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0")
  fi
  if configure_and_build "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true; then
    test_build "$ASAN_BUILD" "${asan_env[@]}" -- --no-suite slow --no-suite gui --timeout-multiplier 3
  fi
else
  say "--quick: no ASan/UBSan build"
fi

finish
