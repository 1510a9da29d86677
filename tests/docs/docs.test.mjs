// docs.test.mjs: run every shell example of README.md and docs/*.md against a real genserv, and
// compare what each prints with what the document shows.
//
//   node docs.test.mjs --genserv PATH/TO/genserv --source REPO [--plugin PATH/TO/plugin.so]
//                      [FILE.md...]
//
// The conventions a document follows are in tests/docs/README.md; in short:
//
// - Every fenced block tagged sh, bash, shell or console is run, unless the line right before
//   its fence is <!-- doc-test: skip (why) -->. Blocks in other languages (json, yaml, c,
//   elixir, lua, text, python, js, go) are not commands and are not run; an untagged fence is
//   an error.
// - In sh and bash blocks, "# => TEXT" is what the command before it prints: at the end of the
//   command's line, or on the lines right after it (one "# =>" per line of output). Other
//   comments are prose. In console blocks, "$ " starts a command and the lines up to the next
//   one are its output.
// - Outputs are compared line by line. A line that holds JSON (or starts with text and ends in
//   JSON, like "data: {...}") is compared as JSON, where "..." stands for whatever else there
//   is: other members of an object ({"name": "x", ...}), more elements of an array ([1, ...]),
//   any value (...) and any string ("..."). Masked, since they legitimately vary: the number of
//   any member whose name ends in _ms (uptime_ms, remaining_ms...), and a timer reference (the
//   value of "timer", an integer or a string).
// - Each document runs in one bash session of its own, in order, against a fresh genserv on a
//   free port; localhost:8080, 127.0.0.1:8080 and 0.0.0.0:8080 are rewritten to it (and back
//   in outputs). The session runs in a scratch directory that mirrors the repository, whose
//   build/genserv starts the test's genserv anew with the given flags and environment (on the
//   same port), and returns once it listens: a line "build/genserv ... &" is run without the
//   "&". build/examples/plugin/libgs_example_plugin.so is the example plugin.
// - Every command's exit status must be 0.
//
// Prints how many examples it ran and compared, and every skipped block with its reason; fails
// with the file, the line and the difference.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = parseArgs(process.argv.slice(2));
const source = path.resolve(args.source ?? die('usage: --genserv PATH --source REPO [--plugin SO] [FILE.md...]'));
const genservBin = path.resolve(args.genserv ?? die('--genserv PATH is required'));
const pluginSo = args.plugin ? path.resolve(args.plugin) : null;
const files = args._.length
    ? args._.map((f) => path.relative(source, path.resolve(f)))
    : ['README.md', ...fs.readdirSync(path.join(source, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const FILE_TIMEOUT_MS = 45000;
const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);
// python, js and go: docs/clients.md's programs, which tests/clients/ runs.
const OTHER_LANGS = new Set(['json', 'yaml', 'c', 'elixir', 'lua', 'text', 'python', 'js', 'go']);
const DEFAULT_PORT = '8080';

let failures = 0;
const stats = { blocks: 0, commands: 0, compared: 0, skipped: [], other: [] };

function parseArgs(argv) {
    const out = { _: [] };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[++i];
        else out._.push(argv[i]);
    }
    return out;
}

function die(msg) {
    console.error(msg);
    process.exit(2);
}

function fail(where, msg) {
    failures++;
    console.log(`FAIL ${where}: ${msg}`);
}

// ---------------------------------------------------------------------------------------------
// Markdown: fenced blocks, skip markers, and the commands and outputs of a block
// ---------------------------------------------------------------------------------------------

const SKIP_RE = /^<!--\s*doc-test:\s*skip\s*\((.+)\)\s*-->$/;

function blocksOf(file) {
    const lines = fs.readFileSync(path.join(source, file), 'utf8').split('\n');
    const blocks = [];
    for (let i = 0; i < lines.length; i++) {
        const open = lines[i].match(/^(\s*)(`{3,})\s*([^`\s]*)\s*$/);
        if (!open) {
            if (/doc-test/.test(lines[i]) && !SKIP_RE.test(lines[i].trim()))
                fail(`${file}:${i + 1}`, `a doc-test marker that is not "<!-- doc-test: skip (why) -->": ${lines[i].trim()}`);
            else if (SKIP_RE.test(lines[i].trim()) && !/^\s*`{3,}/.test(lines[i + 1] ?? ''))
                fail(`${file}:${i + 1}`, 'a skip marker must be the line right before a fence');
            continue;
        }
        const [, indent, fence, lang] = open;
        const start = i;
        const body = [];
        for (i++; i < lines.length && !new RegExp(`^\\s*${fence}\\s*$`).test(lines[i]); i++)
            body.push(lines[i].startsWith(indent) ? lines[i].slice(indent.length) : lines[i]);
        const skip = (lines[start - 1] ?? '').trim().match(SKIP_RE);
        blocks.push({ file, line: start + 1, lang, body, skip: skip ? skip[1] : null });
    }
    return blocks;
}

// A block's segments: { lines: [[text, docLine]...], expected: [string...] | null }. A segment
// is one complete shell command (a line, or several when a quote or a loop spans them), so
// that "# =>" compares the output of the command right before it, and of that one alone.
function segmentsOf(block) {
    return block.lang === 'console' ? consoleSegments(block) : shellSegments(block);
}

// Whether these lines are one or more complete commands (bash parses them without running); a
// here-document (cat > f <<'EOF' ... EOF) is one command up to its delimiter.
function complete(lines) {
    if (/\\$/.test(lines[lines.length - 1][0])) return false; // a continued line (bash -n allows it at the end)
    const r = spawnSync('bash', ['-n', '-c', lines.map(([t]) => t).join('\n')], { encoding: 'utf8' });
    // bash -n accepts a here-document that the text ends before its delimiter (it only warns):
    // that command goes on to the delimiter's line.
    return r.status === 0 && !/here-document at line \d+ delimited by end-of-file/.test(r.stderr);
}

const isProse = (t) => /^\s*(#.*)?$/.test(t);

function shellSegments(block) {
    const segs = [];
    let pending = [];
    let last = null; // the command that "# =>" lines continue
    block.body.forEach((text, k) => {
        const docLine = block.line + 1 + k;
        const own = text.match(/^\s*# =>(?: (.*))?$/);
        if (own) {
            if (!last || pending.some(([t]) => !isProse(t))) fail(`${block.file}:${docLine}`, '"# =>" must follow the command whose output it shows');
            else (last.expected ??= []).push(own[1] ?? '');
            return;
        }
        const trailing = text.match(/^(.*\S)\s+# => (.*)$/);
        pending.push([trailing ? trailing[1] : text, docLine]);
        if (pending.every(([t]) => isProse(t))) {
            if (!isProse(text)) return;
            pending = [];
            if (text.trim()) last = null; // a prose comment ends what "# =>" continues
            return;
        }
        if (!complete(pending)) {
            if (trailing) fail(`${block.file}:${docLine}`, '"# =>" in the middle of a command');
            last = null;
            return;
        }
        last = { lines: pending, expected: trailing ? [trailing[2]] : null };
        segs.push(last);
        pending = [];
    });
    if (pending.some(([t]) => !isProse(t))) fail(`${block.file}:${pending[0][1]}`, 'an incomplete command at the end of the block');
    return segs;
}

function consoleSegments(block) {
    const segs = [];
    let cur = null;
    let continued = false;
    block.body.forEach((text, k) => {
        const docLine = block.line + 1 + k;
        if (continued) {
            cur.lines.push([text.replace(/^> /, ''), docLine]);
        } else if (text.startsWith('$ ')) {
            cur = { lines: [[text.slice(2), docLine]], expected: [] };
            segs.push(cur);
        } else if (cur) {
            cur.expected.push(text);
        } else if (text.trim()) {
            fail(`${block.file}:${docLine}`, 'output before any "$ " command in a console block');
        }
        continued = /\\$/.test(text) && cur !== null;
    });
    for (const s of segs) while (s.expected.length && s.expected[s.expected.length - 1] === '') s.expected.pop();
    return segs;
}

// ---------------------------------------------------------------------------------------------
// Expected outputs: JSON with "..." and masks
// ---------------------------------------------------------------------------------------------

const ANY = Symbol('any value');
const ANY_STRING = Symbol('any string');
const REST = Symbol('...');

// JSON, plus "..." where a value, an object member or array elements may stand.
function parsePattern(text) {
    let i = 0;
    const ws = () => {
        while (/\s/.test(text[i] ?? '')) i++;
    };
    const err = (what) => {
        throw new Error(`${what} at column ${i + 1} of ${text}`);
    };
    function value() {
        ws();
        if (text.startsWith('...', i)) {
            i += 3;
            return ANY;
        }
        const c = text[i];
        if (c === '{') {
            i++;
            const obj = { members: {}, rest: false };
            ws();
            if (text[i] === '}') return i++, obj;
            for (;;) {
                ws();
                if (text.startsWith('...', i)) {
                    i += 3;
                    obj.rest = true;
                } else {
                    const k = string();
                    ws();
                    if (text[i++] !== ':') err('":" expected');
                    obj.members[k] = value();
                }
                ws();
                if (text[i] === ',') i++;
                else if (text[i] === '}') return i++, obj;
                else err('"," or "}" expected');
            }
        }
        if (c === '[') {
            i++;
            const arr = [];
            ws();
            if (text[i] === ']') return i++, arr;
            for (;;) {
                ws();
                if (text.startsWith('...', i) && /[\s,\]]/.test(text[i + 3])) {
                    i += 3;
                    arr.push(REST);
                } else arr.push(value());
                ws();
                if (text[i] === ',') i++;
                else if (text[i] === ']') return i++, arr;
                else err('"," or "]" expected');
            }
        }
        if (c === '"') {
            const s = string();
            return s === '...' ? ANY_STRING : s;
        }
        const m = text.slice(i).match(/^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/);
        if (!m) err('a JSON value expected');
        i += m[0].length;
        return JSON.parse(m[0]);
    }
    function string() {
        const m = text.slice(i).match(/^"(?:[^"\\]|\\.)*"/);
        if (!m) err('a string expected');
        i += m[0].length;
        return JSON.parse(m[0]);
    }
    const v = value();
    ws();
    if (i !== text.length) err('unexpected text');
    return v;
}

const isScalarRef = (v) => Number.isInteger(v) || typeof v === 'string';

// Differences between a pattern and an actual JSON value, as "at PATH: ..." strings.
function diff(pat, act, at = '', key = '') {
    if (pat === ANY) return [];
    if (/_ms$/.test(key) && typeof pat === 'number' && typeof act === 'number') return []; // masked: a time
    // Masked: a timer reference, an integer or an opaque string whichever the document shows.
    if (key === 'timer' && (isScalarRef(pat) || pat === ANY_STRING) && isScalarRef(act)) return [];
    if (pat === ANY_STRING) return typeof act === 'string' ? [] : [`at ${at || '(top)'}: expected a string, got ${JSON.stringify(act)}`];
    if (Array.isArray(pat)) {
        if (!Array.isArray(act)) return [`at ${at || '(top)'}: expected an array, got ${JSON.stringify(act)}`];
        const r = pat.indexOf(REST);
        const head = r < 0 ? pat : pat.slice(0, r);
        const tail = r < 0 ? [] : pat.slice(r + 1);
        if (r < 0 ? act.length !== pat.length : act.length < head.length + tail.length)
            return [`at ${at || '(top)'}: expected ${r < 0 ? '' : 'at least '}${head.length + tail.length} element(s), got ${act.length}`];
        return [
            ...head.flatMap((p, k) => diff(p, act[k], `${at}[${k}]`)),
            ...tail.flatMap((p, k) => diff(p, act[act.length - tail.length + k], `${at}[${act.length - tail.length + k}]`)),
        ];
    }
    if (pat && typeof pat === 'object' && 'members' in pat) {
        if (!act || typeof act !== 'object' || Array.isArray(act)) return [`at ${at || '(top)'}: expected an object, got ${JSON.stringify(act)}`];
        const out = [];
        for (const [k, p] of Object.entries(pat.members)) {
            if (!(k in act)) out.push(`at ${at}.${k}: missing`);
            else out.push(...diff(p, act[k], `${at}.${k}`, k));
        }
        if (!pat.rest) for (const k of Object.keys(act)) if (!(k in pat.members)) out.push(`at ${at}.${k}: not in the document (add it, or "..." for the rest)`);
        return out;
    }
    return JSON.stringify(pat) === JSON.stringify(act) ? [] : [`at ${at || '(top)'}: expected ${JSON.stringify(pat)}, got ${JSON.stringify(act)}`];
}

// One line: JSON (after an optional text prefix, like "data: ") compared as JSON, else text.
function compareLine(exp, act) {
    const j = exp.search(/[[{]/);
    if (j >= 0) {
        let pat;
        try {
            pat = parsePattern(exp.slice(j));
        } catch {
            pat = undefined; // not JSON after all: compare as text
        }
        if (pat !== undefined) {
            if (act.slice(0, j) !== exp.slice(0, j)) return [`expected a line starting ${JSON.stringify(exp.slice(0, j))}`];
            let v;
            try {
                v = JSON.parse(act.slice(j));
            } catch {
                return ['expected JSON'];
            }
            return diff(pat, v);
        }
    }
    return exp.trimEnd() === act.trimEnd() ? [] : ['the text differs'];
}

function compare(expected, actual) {
    const act = actual.replace(/\n$/, '').split('\n');
    if (actual === '') act.length = 0;
    const exp = [...expected];
    const problems = [];
    if (exp.length !== act.length) problems.push(`expected ${exp.length} line(s) of output, got ${act.length}`);
    for (let k = 0; k < Math.min(exp.length, act.length); k++) {
        const d = compareLine(exp[k], act[k]);
        if (d.length)
            problems.push(`line ${k + 1}: ${d.join('; ')}\n       document: ${exp[k]}\n       printed:  ${act[k].length > 600 ? act[k].slice(0, 600) + '...' : act[k]}`);
    }
    if (exp.length !== act.length && problems.length === 1)
        problems.push(`document:\n${exp.map((l) => '         ' + l).join('\n')}\n     printed:\n${act.map((l) => '         ' + l.slice(0, 300)).join('\n')}`);
    return problems;
}

// ---------------------------------------------------------------------------------------------
// The scratch directory, build/genserv, and one document's bash session
// ---------------------------------------------------------------------------------------------

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'genserv-docs-'));
const state = path.join(scratch, '.doc-test');

function makeScratch() {
    // The repository, read-only as the examples use it...
    for (const e of fs.readdirSync(source))
        if (!/^(build|\.git$)/.test(e)) fs.symlinkSync(path.join(source, e), path.join(scratch, e));
    // ...with a build/ of the test's own: genserv is the stand-in below, the plugin is real.
    fs.mkdirSync(path.join(scratch, 'build/examples/plugin'), { recursive: true });
    fs.mkdirSync(state);
    if (pluginSo) fs.symlinkSync(pluginSo, path.join(scratch, 'build/examples/plugin/libgs_example_plugin.so'));
    fs.writeFileSync(path.join(scratch, 'build/genserv'), STAND_IN, { mode: 0o755 });
}

// build/genserv inside the session: stops the genserv running (by its PID), starts the real one
// with the same flags on the test's port and the caller's environment, and returns once it
// listens. --help and --health-check go to the real binary as they are, and so does the
// command-line client (`build/genserv call counter get_count`, docs/cli.md).
const STAND_IN = `#!/usr/bin/env bash
set -euo pipefail
real=$DOC_TEST_GENSERV state=$DOC_TEST_STATE
case \${1-} in
call | cast | send | send-after | timers | ps | state | start | stop | tree | behaviours | watch | metrics | help) exec "$real" "$@" ;;
esac
for a in "$@"; do
    case $a in --help | -h | --version | --health-check) exec "$real" "$@" ;; esac
done
if [ -s "$state/genserv.pid" ]; then
    pid=$(cat "$state/genserv.pid")
    kill -TERM "$pid" 2>/dev/null || true
    # Gone, or a zombie nobody reaps yet: either way the port is free.
    for _ in $(seq 1 500); do
        s=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
        [ "$s" = X ] || [ "$s" = Z ] && break
        sleep 0.02
    done
    : >"$state/genserv.pid"
fi
flags=()
skip=0
for a in "$@"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case $a in --listen) skip=1 ;; --listen=*) ;; *) flags+=("$a") ;; esac
done
"$real" --listen "127.0.0.1:$DOC_TEST_PORT" "\${flags[@]}" >"$state/genserv.out" 2>"$state/genserv.err" </dev/null &
pid=$!
echo "$pid" >"$state/genserv.pid"
for _ in $(seq 1 500); do
    grep -q '^listening on ' "$state/genserv.out" && exit 0
    kill -0 "$pid" 2>/dev/null || { echo "genserv exited:" >&2; cat "$state/genserv.err" >&2; exit 1; }
    sleep 0.02
done
echo "genserv did not listen within 10 s" >&2
exit 1
`;

function genservPid() {
    const p = fs.existsSync(path.join(state, 'genserv.pid')) ? fs.readFileSync(path.join(state, 'genserv.pid'), 'utf8').trim() : '';
    return p ? Number(p) : null;
}

async function stopGenserv() {
    const pid = genservPid();
    if (!pid) return;
    try {
        process.kill(pid, 'SIGTERM');
    } catch {
        return;
    }
    for (let k = 0; k < 500; k++) {
        let st;
        try {
            st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2];
        } catch {
            break;
        }
        if (st === 'Z') break;
        await new Promise((r) => setTimeout(r, 20));
    }
    fs.writeFileSync(path.join(state, 'genserv.pid'), '');
}

function sessionEnv(port) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GENSERV_')) env[k] = v;
    return { ...env, LC_ALL: 'C.UTF-8', DOC_TEST_GENSERV: genservBin, DOC_TEST_STATE: state, DOC_TEST_PORT: String(port) };
}

// A fresh genserv for a document: started by the stand-in on a free port (port 0, then kept).
function startFresh() {
    const r = spawnSync(path.join(scratch, 'build/genserv'), [], { env: sessionEnv(0), encoding: 'utf8', cwd: scratch, timeout: 20000 });
    if (r.status !== 0) throw new Error(`genserv did not start (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
    const m = fs.readFileSync(path.join(state, 'genserv.out'), 'utf8').match(/^listening on http:\/\/127\.0\.0\.1:(\d+)$/m);
    if (!m) throw new Error('genserv printed no port');
    return Number(m[1]);
}

const HOSTS_RE = new RegExp(`\\b(localhost|127\\.0\\.0\\.1|0\\.0\\.0\\.0):${DEFAULT_PORT}\\b`, 'g');

// A line that starts genserv in the background, after any VAR=value assignments.
const startsGenserv = (t) => !/^\s*(curl|#)/.test(t) && /(^|[\s/])genserv\s[^&|;]*&\s*(#.*)?$/.test(t);
const backgrounds = (t) => /(^|[^&])&\s*(#.*)?$/.test(t);

function scriptLine(text, port) {
    let t = text.replace(HOSTS_RE, `127.0.0.1:${port}`);
    // "build/genserv ... &": the stand-in returns once genserv listens, so run it in the
    // foreground, or the next command could come before it listens.
    if (startsGenserv(t)) t = t.replace(/\s*&\s*(#.*)?$/, '');
    return t;
}

async function runDocument(file) {
    const blocks = blocksOf(file);
    const run = [];
    for (const b of blocks) {
        if (b.skip) {
            stats.skipped.push(`${file}:${b.line} (${b.skip})`);
            continue;
        }
        if (b.lang === '') {
            fail(`${file}:${b.line}`, 'a fence without a language: tag it (sh, console... to run it; text, json... if it is not a command)');
            continue;
        }
        if (!SHELL_LANGS.has(b.lang)) {
            if (!OTHER_LANGS.has(b.lang)) fail(`${file}:${b.line}`, `unknown fence language "${b.lang}" (known: ${[...SHELL_LANGS, ...OTHER_LANGS].join(', ')})`);
            stats.other.push(`${file}:${b.line} (${b.lang})`);
            continue;
        }
        run.push(b);
    }
    if (!run.length) return;

    const port = startFresh();
    const segs = [];
    let script = 'cd "$DOC_TEST_SCRATCH"\n';
    for (const b of run) {
        stats.blocks++;
        for (const s of segmentsOf(b)) {
            for (const [t, docLine] of s.lines)
                if (backgrounds(t) && !startsGenserv(t))
                    fail(`${file}:${docLine}`, 'a command in the background would race the next example (only "build/genserv ... &" may be)');
            const n = segs.length;
            segs.push({ ...s, block: b });
            const errFile = path.join(state, `stderr.${n}`);
            script += `{\n${s.lines.map(([t]) => scriptLine(t, port)).join('\n')}\n} 2>${JSON.stringify(errFile)}\n`;
            script += `printf '\\001DOC-TEST %d %d\\001\\n' ${n} $?\n`;
        }
    }
    const scriptFile = path.join(state, `${file.replace(/\W/g, '_')}.sh`);
    fs.writeFileSync(scriptFile, script);

    const { stdout, stderr, timedOut } = await runBash(scriptFile, { ...sessionEnv(port), DOC_TEST_SCRATCH: scratch });
    const outs = new Map();
    const re = /\x01DOC-TEST (\d+) (\d+)\x01\n/g;
    let from = 0;
    for (let m; (m = re.exec(stdout)); from = re.lastIndex)
        outs.set(Number(m[1]), { out: stdout.slice(from, m.index).replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${DEFAULT_PORT}`), status: Number(m[2]) });
    segs.forEach((s, n) => {
        const where = `${file}:${s.lines[0][1]}`;
        const cmd = s.lines.map(([t]) => t).join('\n').trim();
        const r = outs.get(n);
        if (!r) {
            if (!segs.slice(0, n).every((_, k) => outs.has(k))) return; // an earlier one stopped the session
            fail(where, `${timedOut ? `the session was stopped after ${FILE_TIMEOUT_MS / 1000} s here` : 'the session stopped here'}:\n     ${cmd}\n     stderr: ${errOf(n)}${stderr ? `\n     bash: ${stderr}` : ''}`);
            return;
        }
        stats.commands++;
        if (r.status !== 0) fail(where, `exit status ${r.status}:\n     ${cmd}\n     stderr: ${errOf(n)}`);
        if (s.expected === null) return;
        stats.compared++;
        const problems = compare(s.expected, r.out);
        if (problems.length) fail(where, `the output differs from the document:\n     ${cmd}\n     ${problems.join('\n     ')}`);
    });
    await stopGenserv();
}

function errOf(n) {
    const f = path.join(state, `stderr.${n}`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().slice(0, 1000) || '(empty)' : '(none)';
}

function runBash(scriptFile, env) {
    return new Promise((resolve) => {
        // Its own process group, so that a timeout ends the session and whatever it started.
        const p = spawn('bash', ['--noprofile', '--norc', scriptFile], { env, cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => {
            timedOut = true;
            try {
                process.kill(-p.pid, 'SIGKILL');
            } catch {}
        }, FILE_TIMEOUT_MS);
        p.on('close', () => {
            clearTimeout(timer);
            resolve({ stdout, stderr: stderr.trim(), timedOut });
        });
    });
}

// ---------------------------------------------------------------------------------------------

let exitCode = 0;
try {
    makeScratch();
    for (const f of files) await runDocument(f);
} catch (e) {
    fail('docs test', e.stack);
} finally {
    await stopGenserv();
}
for (const s of stats.skipped) console.log(`not run: ${s}`);
for (const s of stats.other) console.log(`not a command: ${s}`);
console.log(
    `docs: ${stats.commands} example command(s) run in ${stats.blocks} block(s) of ${files.length} file(s), ` +
        `${stats.compared} output(s) compared with the document; ${stats.skipped.length} block(s) marked not run; ` +
        `${stats.other.length} block(s) not commands; ${failures} failure(s)`,
);
if (failures) {
    console.log(`scratch directory kept: ${scratch}`);
    exitCode = 1;
} else {
    if (!process.env.DOC_TEST_KEEP) fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(exitCode);
