# shellcheck shell=bash
# Process and temporary-directory cleanup for the scripts that start things in the background
# or make a work directory (scripts/container-check.sh, scripts/container-base.sh,
# scripts/fuzz.sh). Source it; it installs one EXIT trap (INT and TERM become exits 130 and
# 143, so the trap runs for them too) which, in this order:
#   1. stops the background processes the script tracked, by PID (never by name);
#   2. stops the process trees it tracked (a build and everything under it, however deep,
#      also processes in sessions of their own): SIGTERM to the whole tree, a bounded wait,
#      SIGKILL to what is left, a bounded wait again;
#   3. runs the handlers the script registered, the last registered first; one of them is
#      the work directory's, registered by cleanup_workdir, which removes it, or keeps it
#      (and says where) after a failure or when the script asked to keep it;
#   4. exits with the script's status.
# Handlers see that status in $cleanup_rc and may not change it; cleanup_keeping tells them
# whether the work directory stays.
#
# API:
#   cleanup_sudo=(sudo)              how to signal and remove what root made (default: nothing)
#   cleanup_track_pid PID            stop PID at exit (SIGTERM, no wait)
#   cleanup_track_tree PID           stop PID and all its descendants at exit (see 2.)
#   cleanup_untrack PID              forget PID (it ended: the PID may be reused)
#   cleanup_on_exit FUNCTION [ARG...]  run FUNCTION ARG... at exit
#   cleanup_workdir VAR TEMPLATE [SAYING]  VAR=$(mktemp -d TEMPLATE), removed or kept at
#                                    exit (see 3.); SAYING is printed with the path when kept
#   cleanup_keep_on_success=1        keep the work directory after a success too
#   cleanup_keeping                  true when the work directory will be kept
#   cleanup_descendants PID          print every process below PID, by parent links
#   cleanup_kill_tree PID            step 2 for one tree, now

cleanup_sudo=()
cleanup_pids=()
cleanup_trees=()
cleanup_handlers=()
cleanup_dir=""
cleanup_saying=""
cleanup_keep_on_success=${cleanup_keep_on_success:-0}
cleanup_rc=0

cleanup_track_pid() { cleanup_pids+=("$1"); }
cleanup_track_tree() { cleanup_trees+=("$1"); }

cleanup_untrack() {
    local p kept=()
    for p in "${cleanup_pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    cleanup_pids=("${kept[@]}")
    kept=()
    for p in "${cleanup_trees[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    cleanup_trees=("${kept[@]}")
}

# Handlers are stored as one word each (printf %q), so that arguments keep their spaces.
cleanup_on_exit() {
    local words
    words=$(printf '%q ' "$@")
    cleanup_handlers+=("$words")
}

cleanup_workdir() { # VAR TEMPLATE [SAYING]
    local dir
    dir=$(mktemp -d "$2")
    cleanup_dir=$dir
    cleanup_saying=${3:-}
    printf -v "$1" '%s' "$dir"
    cleanup_on_exit cleanup_workdir_end
}

cleanup_workdir_end() {
    [ -n "$cleanup_dir" ] && [ -d "$cleanup_dir" ] || return 0
    if cleanup_keeping; then
        [ -z "$cleanup_saying" ] || echo "$cleanup_saying $cleanup_dir" >&2
    else
        "${cleanup_sudo[@]}" rm -rf "$cleanup_dir"
    fi
}

cleanup_keeping() {
    [ "$cleanup_rc" -ne 0 ] || [ "$cleanup_keep_on_success" = 1 ]
}

# Every process below PID $1 (by parent links), deepest last.
cleanup_descendants() {
    local all queue=("$1") p c
    all=$(ps -eo pid=,ppid=)
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for c in $(awk -v p="$p" '$2 == p {print $1}' <<<"$all"); do
            echo "$c"
            queue+=("$c")
        done
    done
}

# SIGTERM to PID $1 and every process under it (they may sit in sessions of their own, as
# a container build's RUN steps do), up to 15 s for them to go, SIGKILL to what is left, up
# to 5 s more: the caller may then touch what they used.
cleanup_kill_tree() {
    local tree i
    tree=$(cleanup_descendants "$1")
    # shellcheck disable=SC2086 # a list of PIDs
    "${cleanup_sudo[@]}" kill -TERM "$1" $tree 2>/dev/null
    for i in $(seq 200); do
        # shellcheck disable=SC2086
        "${cleanup_sudo[@]}" kill -0 "$1" $tree 2>/dev/null || break
        # shellcheck disable=SC2086
        [ "$i" != 150 ] || "${cleanup_sudo[@]}" kill -KILL "$1" $tree 2>/dev/null
        sleep 0.1
    done
}

cleanup_run() {
    cleanup_rc=$?
    set +e
    local p i
    for p in "${cleanup_pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${cleanup_trees[@]}"; do
        cleanup_kill_tree "$p"
    done
    for ((i = ${#cleanup_handlers[@]} - 1; i >= 0; i--)); do
        eval "${cleanup_handlers[i]}"
    done
    exit "$cleanup_rc"
}

trap cleanup_run EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
