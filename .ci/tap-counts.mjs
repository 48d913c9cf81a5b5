// Reads the TAP stream of one `tap --reporter=tap` run and prints its honest numbers as JSON:
//   tests      leaf subtests that ran (a t.test with no t.test inside: one scenario), by outcome;
//   skipped    subtests and whole files skipped or todo, with their reasons;
//   assertions the individual checks, reported beside the tests, never instead of them;
//   failures   failed tests, plus one for each failed file or parent test that no failed test
//              explains (a crash, a timeout, a failed check outside any subtest).
// Usage: node .ci/tap-counts.mjs < pass.log
import { readFileSync } from 'node:fs'

const lines = readFileSync(0, 'utf8').split('\n')
const counts = { passed: 0, failed: 0, skipped: 0, todo: 0, assertions: 0, skips: [], failures: [] }

// A stack of open subtests: their indent, name, whether they hold subtests, and failures counted inside.
const open = []
const RESULT = /^( *)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*?))?(?: # time=[\d.]+m?s)?$/
const HEADER = /^( *)# Subtest: (.*)$/

for (const line of lines) {
  const header = HEADER.exec(line)
  if (header !== null) {
    if (open.length > 0) open[open.length - 1].hasChildren = true
    open.push({ indent: header[1].length, name: header[2], hasChildren: false, failuresInside: 0 })
    continue
  }
  const result = RESULT.exec(line)
  if (result === null) continue
  const [, spaces, status, name, directive, reason] = result
  const indent = spaces.length
  const ok = status === 'ok'
  const top = open[open.length - 1]
  const closesSubtest = top !== undefined && top.indent === indent && top.name === name
  if (closesSubtest) open.pop()
  const where = [...open.map((entry) => entry.name), name].join(' > ')
  const noteFailure = (what) => {
    counts.failed += 1
    counts.failures.push(what)
    for (const entry of open) entry.failuresInside += 1
  }

  if (directive !== undefined) {
    // A skipped or todo subtest or file (tap prints no header for these) counts as a skip, never a pass.
    if (directive === 'SKIP') counts.skipped += 1
    else counts.todo += 1
    counts.skips.push(`${where}: ${directive} ${reason}`.trim())
    continue
  }
  if (indent === 0) {
    if (!closesSubtest) continue
    if (!ok && top.failuresInside === 0) noteFailure(`${name}: the file failed outside any test (crash, timeout or a check at its top level)`)
    continue
  }
  if (!closesSubtest) {
    counts.assertions += 1
    // A failed check directly in a file or a parent test is not inside any leaf test: counted when
    // that file or parent closes, if nothing else failed there.
    continue
  }
  if (!top.hasChildren) {
    if (ok) counts.passed += 1
    else noteFailure(where)
  } else if (!ok && top.failuresInside === 0) {
    noteFailure(`${where}: failed outside its subtests`)
  }
}

process.stdout.write(JSON.stringify(counts) + '\n')
