// docs/policy-testing.md's example, run: every ```yaml block whose first line
// is "# PATH" is written to PATH in a scratch directory, and every ```console
// session is run there by the built binary (build/bin/sluice), as an
// unprivileged user (setpriv, uid/gid 65534) with no agent running: each
// command's output (stdout and stderr) must be exactly what the page shows.
// So the offline mode needs no root and no agent, and the page's output is
// what the binary prints.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, SLUICE } from '../helpers/agent.js';
import { isRoot } from '../helpers/netns.js';

const DOC = join(ROOT, 'docs/policy-testing.md');
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

interface Session {
  commands: Array<{ command: string; output: string }>;
}

/** The page's fenced blocks: language and lines. */
function blocks(text: string): Array<{ lang: string; lines: string[] }> {
  const out: Array<{ lang: string; lines: string[] }> = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push({ lang: m[1]!, lines: m[2]!.replace(/\n$/, '').split('\n') });
  return out;
}

function sessionOf(lines: readonly string[]): Session {
  const commands: Session['commands'] = [];
  for (const line of lines) {
    if (line.startsWith('$ ')) commands.push({ command: line.slice(2), output: '' });
    else commands.at(-1)!.output += `${line}\n`;
  }
  return { commands };
}

const SEPARATOR = '@@@ sluice docs test @@@';

/** Runs a session's commands in one shell (so `echo $?` sees the command before it), as nobody, in `dir`. */
function run(session: Session, dir: string): string[] {
  const script = [
    `sluice() { ${JSON.stringify(process.execPath)} ${JSON.stringify(SLUICE)} "$@"; }`,
    'cd "$1"',
    // Each command's status survives the separator, for an `echo $?` after it.
    ...session.commands.map((c) => `${c.command} 2>&1; __s=$?; echo '${SEPARATOR}'; (exit $__s)`),
  ].join('\n');
  const r = spawnSync(NOBODY[0]!, [...NOBODY.slice(1), 'bash', '-c', script, 'docs', dir], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH } });
  if (r.status === null || r.stderr) throw new Error(`the session did not run: ${r.error?.message ?? r.stderr}`);
  return r.stdout.split(`${SEPARATOR}\n`).slice(0, -1);
}

describe.skipIf(!isRoot)('docs/policy-testing.md: the example runs as shown, offline, unprivileged, with no agent', () => {
  const page = blocks(readFileSync(DOC, 'utf8'));
  const files = page.filter((b) => b.lang === 'yaml' && /^# [\w./-]+\.ya?ml$/.test(b.lines[0]!));
  const sessions = page.filter((b) => b.lang === 'console').map((b) => sessionOf(b.lines));
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'slt-docs-'));
    for (const f of files) {
      const path = join(dir, f.lines[0]!.slice(2));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `${f.lines.join('\n')}\n`);
    }
    // Readable by nobody: the scratch directory and what is in it.
    spawnSync('chmod', ['-R', 'a+rX', dir]);
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has the example: manifests, assertions and sessions (the page parses)', () => {
    expect(files.map((f) => f.lines[0])).toEqual(['# manifests/shop.yaml', '# manifests/monitoring.yaml', '# tests/shop.yaml', '# tests/wrong.yaml', '# broken/bad.yaml']);
    expect(sessions.map((s) => s.commands.length)).toEqual([2, 3, 2, 2]);
  });

  it('runs unprivileged: the user the sessions run as is not root', () => {
    const r = spawnSync(NOBODY[0]!, [...NOBODY.slice(1), 'id', '-u'], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('65534');
  });

  for (const [i, session] of sessions.entries()) {
    it(`session ${i + 1}: ${session.commands.map((c) => c.command).join(' ; ')}`, () => {
      const outputs = run(session, dir);
      expect(outputs).toHaveLength(session.commands.length);
      session.commands.forEach((c, k) => expect(outputs[k], `$ ${c.command}`).toBe(c.output));
    });
  }
});
