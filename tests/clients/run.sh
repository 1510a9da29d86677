#!/usr/bin/env bash
# The clients test: docs/clients.md's programs in Python, Node, Elixir and Go, run against a real
# genserv, their output compared with the document's.
#   tests/clients/run.sh PATH/TO/genserv [LANG...]   run them (LANG: py mjs exs go; default all)
#   tests/clients/run.sh --sync-doc                  copy examples/clients/* into docs/clients.md
# The programs are examples/clients/client.{py,mjs,exs,go}, and expected.txt is what each one
# must print. The document shows each file in full, in the block after a line
# <!-- include: examples/clients/FILE -->; this test fails when a block differs from its file
# (--sync-doc rewrites the blocks from the files), so the document and the tested code cannot
# drift apart. Each program runs twice, each time against a fresh genserv started here on a
# free port and stopped by its PID: once with a token (GENSERV_TOKEN, which the program must
# send) and once without. A missing toolchain (python3, node, elixir, go) fails the test when
# CI=true and is a printed skip otherwise; with every toolchain missing it exits 77 (CTest:
# skipped). scripts/deps.sh test installs them all.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
doc=$root/docs/clients.md
examples=$root/examples/clients

# The document with every included block replaced by its file, on stdout.
render_doc() {
    awk -v root="$root" '
        function fail(msg) { print FILENAME ":" FNR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
        want {
            if ($0 !~ /^```[a-z]+$/) fail("an include marker must be followed by a fenced block")
            print
            while ((r = (getline line < path)) > 0) print line
            if (r < 0) fail("no such file: " path)
            close(path)
            want = 0; inside = 1; next
        }
        inside { if ($0 ~ /^```$/) { print; inside = 0 }; next }
        /^<!-- include: [^ ]+ -->$/ {
            path = root "/" $3; want = 1; print; next
        }
        { print }
        END { if (!bad && (want || inside)) fail("the document ends inside an included block") }
    ' "$doc"
}

if [ "${1:-}" = --sync-doc ]; then
    tmp=$(mktemp)
    render_doc >"$tmp"
    if cmp -s "$tmp" "$doc"; then echo "docs/clients.md is up to date"; else cat "$tmp" >"$doc"; echo "docs/clients.md updated"; fi
    rm -f "$tmp"
    exit 0
fi

genserv=$(realpath "${1:?usage: run.sh PATH/TO/genserv [py|mjs|exs|go...] | --sync-doc}")
shift
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(py mjs exs go)
failures=0
ran=0
skipped=()
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

# 1. The document shows the files as they are, and every file is in it.
rendered=$(mktemp)
if ! render_doc >"$rendered"; then
    fail "docs/clients.md: its includes could not be rendered (above)"
elif ! cmp -s "$rendered" "$doc"; then
    fail "docs/clients.md differs from the files it includes (run tests/clients/run.sh --sync-doc):"
    { diff -u "$doc" "$rendered" || true; } | sed 's/^/    /' | head -n 60
fi
rm -f "$rendered"
for f in "$examples"/*; do
    name=${f#"$root"/}
    grep -qxF "<!-- include: $name -->" "$doc" || fail "docs/clients.md does not include $name"
    case $f in
    */client.py | */client.mjs | */client.exs | */client.go | */expected.txt) ;;
    *) fail "$name: the clients test does not know how to run it" ;;
    esac
done

# 2. Each program against a real genserv.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/genserv-clients.XXXXXX")
genserv_pid=
stop_genserv() {
    [ -n "$genserv_pid" ] || return 0
    kill -TERM "$genserv_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$genserv_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$genserv_pid" 2>/dev/null || true
    wait "$genserv_pid" 2>/dev/null || true
    genserv_pid=
}
trap 'stop_genserv; rm -rf "$scratch"' EXIT
trap 'exit 143' TERM INT # through the EXIT trap: CTest's timeout or ^C stops genserv too

# The environment of genserv and of the programs: none of the caller's GENSERV_* settings.
clean_env=(env)
for v in $(compgen -e); do
    case $v in GENSERV_*) clean_env+=(-u "$v") ;; esac
done

# Starts genserv on a free port with TOKEN (none when empty); sets genserv_pid and url.
start_genserv() {
    local token=$1 out=$scratch/genserv.out
    : >"$out"
    (cd "$scratch" && exec "${clean_env[@]}" ${token:+"GENSERV_TOKEN=$token"} "$genserv" \
        --listen 127.0.0.1:0 >"$out" 2>"$scratch/genserv.err" </dev/null) &
    genserv_pid=$!
    for _ in $(seq 1 400); do
        url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$out")
        [ -n "$url" ] && return 0
        kill -0 "$genserv_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "genserv did not start listening within 20 s:" >&2
    cat "$scratch/genserv.err" >&2
    return 1
}

run_client() { # LANG TOKEN: runs the program, compares what it prints
    local lang=$1 token=$2 file=$examples/client.$1 with cmd
    with=$([ -n "$token" ] && echo "with a token" || echo "without a token")
    case $lang in
    py) cmd=(python3 "$file") ;;
    mjs) cmd=(node --no-warnings "$file") ;; # Node 18 warns that fetch is experimental
    exs) cmd=(elixir "$file") ;;
    go) cmd=(env GOCACHE="$scratch/go/cache" GOPATH="$scratch/go/path" GOTOOLCHAIN=local
        GOPROXY=off GOFLAGS= go run "$file") ;;
    esac
    start_genserv "$token" || { fail "client.$lang: genserv did not start"; return; }
    local started=$SECONDS status=0
    (cd "$scratch" && exec "${clean_env[@]}" GENSERV_URL="$url" ${token:+"GENSERV_TOKEN=$token"} \
        timeout 40 "${cmd[@]}" >"$scratch/stdout" 2>"$scratch/stderr" </dev/null) || status=$?
    stop_genserv
    ran=$((ran + 1))
    if [ $status -ne 0 ]; then
        fail "examples/clients/client.$lang $with: exit status $status; stderr:"
        sed 's/^/    /' "$scratch/stderr" | head -n 40
    elif ! diff -u "$examples/expected.txt" "$scratch/stdout" >"$scratch/diff"; then
        fail "examples/clients/client.$lang $with: its output differs from expected.txt:"
        sed 's/^/    /' "$scratch/diff"
    elif [ -s "$scratch/stderr" ]; then
        fail "examples/clients/client.$lang $with: it wrote to stderr:"
        sed 's/^/    /' "$scratch/stderr" | head -n 40
    else
        echo "ok   examples/clients/client.$lang $with ($((SECONDS - started)) s)"
    fi
}

for lang in "${langs[@]}"; do
    case $lang in
    py) tool=python3 ;;
    mjs) tool=node ;;
    exs) tool=elixir ;;
    go) tool=go ;;
    *) fail "unknown language $lang (py, mjs, exs or go)"; continue ;;
    esac
    if ! command -v "$tool" >/dev/null; then
        if [ "${CI:-}" = true ]; then
            fail "client.$lang: $tool is not installed (scripts/deps.sh test installs it)"
        else
            echo "skip examples/clients/client.$lang: $tool is not installed (scripts/deps.sh test)"
            skipped+=("$lang")
        fi
        continue
    fi
    run_client "$lang" "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    run_client "$lang" ""
done

echo "clients: $ran run(s) of ${#langs[@]} program(s), ${#skipped[@]} skipped, $failures failure(s)"
[ $failures -eq 0 ] || exit 1
[ $ran -gt 0 ] || exit 77
