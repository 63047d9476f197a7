import { describe, expect, it } from 'vitest';
import { validateObject, ValidationError } from '../standalone/validate.js';
import { PolicyError } from './errors.js';
import { isValidDnsName, NameMatcher, normalizeName, parseFqdnPolicy, selectorMatches, validateDnsName, type NameSelector } from './fqdn.js';

const name = (text: string): NameSelector => ({ kind: 'name', text });
const pattern = (text: string): NameSelector => ({ kind: 'pattern', text });
const parse = (spec: unknown) => parseFqdnPolicy({ metadata: { name: 'p', namespace: 'ci' }, spec });
/** A parsed selector, as the rest of Sluice gets it (normalized). */
const parsed = (entry: Record<string, string>): NameSelector => parse({ podSelector: {}, egress: [{ toFQDNs: [entry] }] }).egress[0]!.selectors[0]!;

const label63 = 'a'.repeat(63);
const name253 = [label63, label63, label63, 'a'.repeat(61)].join('.'); // 63*3 + 61 + 3 dots = 253

describe('normalizeName', () => {
  it.each([
    ['Example.COM.', 'example.com'],
    ['example.com', 'example.com'],
    ['a.b.', 'a.b'],
    ['a..', 'a.'], // only one trailing dot
    ['.', ''],
    ['\u212Aubernetes.io', '\u212Aubernetes.io'], // only ASCII is folded: the Kelvin sign is not "k"
    ['dot\\.example.TEST', 'dot\\.example.test'], // escapes are kept
    ['a\\.', 'a\\.'], // an escaped dot ends the last label, it is not the root's
    ['a\\\\.', 'a\\\\'], // an escaped backslash, then the root's dot
  ])('%j → %j', (input, out) => {
    expect(normalizeName(input)).toBe(out);
  });
});

describe('name matching', () => {
  // [selector, name, expected]
  const cases: Array<[NameSelector, string, boolean]> = [
    // matchName: exact, case-insensitive, trailing dot optional on either side
    [name('api.github.com'), 'api.github.com', true],
    [name('api.github.com'), 'API.GitHub.Com', true],
    [name('api.github.com'), 'api.github.com.', true],
    [name('api.github.com.'), 'api.github.com', true],
    [name('API.GITHUB.COM'), 'api.github.com', true],
    [name('api.github.com'), 'github.com', false],
    [name('api.github.com'), 'x.api.github.com', false],
    [name('api.github.com'), 'api.github.co', false],
    [name('api.github.com'), 'api.github.com..', false],
    [name('api.github.com'), 'apixgithub.com', false], // '.' is literal
    [name('kubernetes.io'), '\u212Aubernetes.io', false],
    // `*` alone matches every name
    [pattern('*'), 'com', true],
    [pattern('*'), 'a.b.c.example.com', true],
    [pattern('*'), 'UPPER.Example.COM.', true],
    [pattern('*.'), 'a.b', true],
    // `*` as a whole label: exactly one non-empty label
    [pattern('*.example.com'), 'a.example.com', true],
    [pattern('*.example.com'), 'A.EXAMPLE.COM.', true],
    [pattern('*.example.com'), 'a-b_c.example.com', true],
    [pattern('*.example.com'), 'example.com', false],
    [pattern('*.example.com'), '.example.com', false],
    [pattern('*.example.com'), 'a.b.example.com', false],
    [pattern('*.example.com'), 'a.example.org', false],
    [pattern('*.example.com'), 'a.example.com.evil.net', false],
    [pattern('*.example.com'), 'aexample.com', false],
    [pattern('*.*.example.com'), 'a.b.example.com', true],
    [pattern('*.*.example.com'), 'a.example.com', false],
    [pattern('example.*'), 'example.org', true],
    [pattern('example.*'), 'example.co.uk', false],
    // `*` inside a label: zero or more characters of that label only
    [pattern('api-*.example.com'), 'api-1.example.com', true],
    [pattern('api-*.example.com'), 'api-.example.com', true],
    [pattern('api-*.example.com'), 'API-West-2.example.com', true],
    [pattern('api-*.example.com'), 'api.example.com', false],
    [pattern('api-*.example.com'), 'api-1.x.example.com', false],
    [pattern('api-*.example.com'), 'xapi-1.example.com', false],
    [pattern('*-api.example.com'), 'eu-api.example.com', true],
    [pattern('*-api.example.com'), '-api.example.com', true],
    [pattern('*-api.example.com'), 'eu-api-x.example.com', false],
    // several `*` in one label
    [pattern('a*b*c.example.com'), 'abc.example.com', true],
    [pattern('a*b*c.example.com'), 'a1b22c.example.com', true],
    [pattern('a*b*c.example.com'), 'axxbyyc.example.com', true],
    [pattern('a*b*c.example.com'), 'acb.example.com', false],
    [pattern('a*b*c.example.com'), 'a.b.c.example.com', false],
    [pattern('a*b*c.example.com'), 'ab.c.example.com', false],
    [pattern('*a*.example.com'), 'a.example.com', true],
    [pattern('*a*.example.com'), 'xxaxx.example.com', true],
    [pattern('*a*.example.com'), 'xyz.example.com', false],
    // leading `**.`: one or more whole labels
    [pattern('**.example.com'), 'a.example.com', true],
    [pattern('**.example.com'), 'a.b.example.com', true],
    [pattern('**.example.com'), 'a.b.c.d.example.com.', true],
    [pattern('**.example.com'), 'X.Y.Example.Com', true],
    [pattern('**.example.com'), 'example.com', false],
    [pattern('**.example.com'), '.example.com', false],
    [pattern('**.example.com'), 'a..example.com', false],
    [pattern('**.example.com'), 'notexample.com', false],
    [pattern('**.example.com'), 'a.example.com.evil.net', false],
    [pattern('**.*.example.com'), 'a.b.example.com', true],
    [pattern('**.*.example.com'), 'a.example.com', false],
    [pattern('**.api-*.example.com'), 'x.y.api-eu.example.com', true],
    [pattern('**.api-*.example.com'), 'x.api.example.com', false],
    // a pattern without wildcards is exact
    [pattern('example.com'), 'EXAMPLE.com.', true],
    [pattern('example.com'), 'a.example.com', false],
  ];

  it.each(cases)('%o vs %j → %s', (sel, n, expected) => {
    expect(selectorMatches(sel, n)).toBe(expected);
    expect(new NameMatcher([sel]).matches(n)).toBe(expected);
  });

  it('selectors from parseFqdnPolicy (upper case, trailing dot) match the same', () => {
    expect(parsed({ matchName: 'API.GitHub.com.' })).toEqual(name('api.github.com'));
    expect(parsed({ matchPattern: '**.GitHubUserContent.COM.' })).toEqual(pattern('**.githubusercontent.com'));
    expect(selectorMatches(parsed({ matchPattern: '*.Example.COM' }), 'Www.example.com')).toBe(true);
  });

  it('NameMatcher is the union of its selectors', () => {
    const m = new NameMatcher([name('api.github.com'), pattern('*.githubusercontent.com'), pattern('**.example.org'), pattern('exact.net')]);
    for (const n of ['api.github.com', 'raw.githubusercontent.com', 'a.b.example.org', 'EXACT.net.']) expect(m.matches(n), n).toBe(true);
    for (const n of ['github.com', 'a.b.githubusercontent.com', 'example.org', 'x.exact.net', '']) expect(m.matches(n), n).toBe(false);
  });

  it('NameMatcher over no selectors matches nothing; with `*` it matches everything', () => {
    expect(new NameMatcher([]).matches('example.com')).toBe(false);
    expect(new NameMatcher([name('a.com'), pattern('*')]).matches('anything.at.all')).toBe(true);
  });

  it('NameMatcher rejects an invalid pattern instead of mis-matching', () => {
    expect(() => new NameMatcher([pattern('a.**.com')])).toThrow(PolicyError);
    expect(() => new NameMatcher([pattern('a..com')])).toThrow(PolicyError);
  });

  it('pattern characters are literal, not regular expression syntax', () => {
    // Only `*` is special; `.` must not match any character.
    expect(selectorMatches(pattern('a*.b.com'), 'ax.bxcom')).toBe(false);
    expect(selectorMatches(pattern('**.b.com'), 'a.bxcom')).toBe(false);
  });
});

describe('name matching, label by label (names in presentation format, as read off the wire)', () => {
  // `dot\.example.test` is two labels, "dot.example" and "test"; dns-packet
  // used to hand it over as "dot.example.test". [selector, name, expected]
  const cases: Array<[NameSelector, string, boolean]> = [
    [name('dot.example.test'), 'dot\\.example.test', false],
    [name('dot.example.test'), 'DOT\\.Example.TEST.', false],
    [name('dot.example.test'), 'dot.example\\.test', false],
    [name('dot.example.test'), 'dot.example.test\\.', false], // a last label "test." (a trailing `\.` is not the root)
    [name('dot.example.test'), 'DOT.example.test.', true],
    // `*` inside a label stands for name characters only: never a dot in a label, never an escape
    [pattern('*.example.test'), 'dot\\.example.test', false],
    [pattern('*.example.test'), 'a\\.b.example.test', false],
    [pattern('*.test'), 'dot\\.example.test', false],
    [pattern('a*.test'), 'a\\032b.test', false],
    [pattern('a*.test'), 'a\\\\.test', false],
    [pattern('*x.test'), '\\255x.test', false],
    [pattern('*.example.test'), 'www.example.test', true],
    // `**.` stands for whole labels of name characters
    [pattern('**.example.test'), 'dot\\.example.test', false],
    [pattern('**.y.test'), 'x\\.y.test', false],
    [pattern('**.test'), 'a\\.b.test', false],
    [pattern('**.test'), 'a.b.test', true],
    [pattern('**.b.test'), 'a\\.x.b.test', false],
    // `*` alone is every name, these included
    [pattern('*'), 'dot\\.example.test', true],
    [pattern('*'), '\\000.\\255', true],
  ];

  it.each(cases)('%o vs %j → %s', (sel, n, expected) => {
    expect(selectorMatches(sel, n)).toBe(expected);
    expect(new NameMatcher([sel]).matches(n)).toBe(expected);
  });

  it('a matcher of every kind of selector matches none of the escaped look-alikes', () => {
    const m = new NameMatcher([name('dot.example.test'), pattern('*.example.test'), pattern('**.example.test'), pattern('dot.*.test'), pattern('d*t.example.test')]);
    expect(m.matches('dot.example.test')).toBe(true);
    for (const n of ['dot\\.example.test', 'dot.example\\.test', 'dot\\.example\\.test', 'd\\.t.example.test', 'x\\.dot.example.test']) expect(m.matches(n), n).toBe(false);
  });
});

describe('DNS name validation', () => {
  it.each([['example.com'], ['Example.COM.'], ['_sip._tcp.example.com'], ['a-b.c_d'], ['com'], [name253], [`${name253}.`], [`${label63}.com`], ['1.2.3.4.in-addr.arpa']])('%j is valid', (n) => {
    expect(isValidDnsName(n)).toBe(true);
    expect(() => validateDnsName(n)).not.toThrow();
  });

  it.each([
    ['', /empty/],
    ['.', /empty/],
    ['a..com', /empty label/],
    ['.a.com', /empty label/],
    ['a.com..', /empty label/],
    [`${name253}a`, /254 characters long; the limit is 253/],
    [`${'a'.repeat(64)}.com`, /longer than 63/],
    ['a b.com', /characters other than/],
    ['a/b.com', /characters other than/],
    ['*.example.com', /only allowed in matchPattern/],
    ['ex\u00e4mple.com', /characters other than/],
    ['\u212Aubernetes.io', /characters other than/],
  ])('%j is invalid', (n, why) => {
    expect(isValidDnsName(n)).toBe(false);
    expect(() => validateDnsName(n, 'qname')).toThrow(why);
    expect(() => validateDnsName(n, 'qname')).toThrow(/^qname: /);
    expect(() => validateDnsName(n)).toThrow(PolicyError);
  });
});

describe('parseFqdnPolicy', () => {
  it('parses the PRODUCT example, with defaults', () => {
    const p = parseFqdnPolicy({
      metadata: { name: 'allow-github', namespace: 'ci' },
      spec: {
        podSelector: { matchLabels: { app: 'builder' } },
        egress: [{ toFQDNs: [{ matchName: 'api.github.com' }, { matchPattern: '*.githubusercontent.com' }], ports: [{ port: 443, protocol: 'TCP' }] }],
      },
    });
    expect(p).toEqual({
      namespace: 'ci',
      name: 'allow-github',
      podSelector: { matchLabels: { app: 'builder' } },
      dns: 'AllowAll',
      egress: [{ selectors: [name('api.github.com'), pattern('*.githubusercontent.com')], ports: [{ protocol: 'TCP', port: 443 }] }],
      audit: false,
    });
  });

  it('defaults: namespace, dns, protocol; absent or empty ports = all ports; absent egress = no rules', () => {
    expect(parseFqdnPolicy({ metadata: { name: 'p' }, spec: { podSelector: {} } })).toEqual({ namespace: 'default', name: 'p', podSelector: {}, dns: 'AllowAll', egress: [], audit: false });
    expect(parse({ podSelector: {}, enforcement: 'Audit' }).audit).toBe(true);
    expect(parse({ podSelector: {}, egress: [], dns: null }).egress).toEqual([]);
    expect(parse({ podSelector: {}, dns: 'MatchedOnly' }).dns).toBe('MatchedOnly');
    const p = parse({
      podSelector: {},
      egress: [
        { toFQDNs: [{ matchName: 'a.com' }] },
        { toFQDNs: [{ matchName: 'a.com' }], ports: [] },
        { toFQDNs: [{ matchName: 'a.com' }], ports: null },
        { toFQDNs: [{ matchName: 'a.com' }], ports: [{ port: 53 }, { port: 1000, endPort: 2000, protocol: 'UDP' }, { port: 9, protocol: 'SCTP', endPort: 9 }] },
      ],
    });
    expect(p.egress.map((r) => r.ports)).toEqual([undefined, undefined, undefined, [{ protocol: 'TCP', port: 53 }, { protocol: 'UDP', port: 1000, endPort: 2000 }, { protocol: 'SCTP', port: 9, endPort: 9 }]]);
    expect(p.egress[3]!.ports![0]).not.toHaveProperty('endPort');
  });

  it('parses podSelector with parseSelector', () => {
    const sel = { matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] };
    expect(parse({ podSelector: sel }).podSelector).toEqual(sel);
  });

  const rule = (over: Record<string, unknown>) => ({ podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.com' }], ...over }] });
  const entry = (e: unknown) => rule({ toFQDNs: [{ matchName: 'ok.com' }, e] });
  const port = (p: unknown) => rule({ ports: [{ port: 443 }, p] });
  const P = 'FQDNPolicy ci/p: ';

  // [what, spec, the message must contain (field path first)]
  const invalid: Array<[string, unknown, string | RegExp]> = [
    ['no spec', undefined, `${P}spec is required`],
    ['spec not an object', 'x', `${P}spec is required`],
    ['no podSelector', { egress: [] }, `${P}spec.podSelector is required`],
    ['null podSelector', { podSelector: null }, `${P}spec.podSelector is required`],
    ['podSelector not an object', { podSelector: 'app=x' }, `${P}spec.podSelector must be an object`],
    ['bad podSelector label', { podSelector: { matchLabels: { 'a b': 'x' } } }, `${P}spec.podSelector.matchLabels: invalid key`],
    ['unknown spec field', { podSelector: {}, egres: [] }, `${P}spec.egres: unknown field (allowed: podSelector, dns, egress, enforcement)`],
    ['unknown enforcement', { podSelector: {}, enforcement: 'audit' }, `${P}spec.enforcement must be Enforce or Audit, not "audit"`],
    ['unknown spec field (ingress)', { podSelector: {}, ingress: [] }, `${P}spec.ingress: unknown field`],
    ['odd unknown key', { podSelector: {}, 'a b': 1 }, `${P}spec["a b"]: unknown field`],
    ['bad dns mode', { podSelector: {}, dns: 'matchedOnly' }, `${P}spec.dns must be AllowAll or MatchedOnly, not "matchedOnly"`],
    ['egress not a list', { podSelector: {}, egress: {} }, `${P}spec.egress must be a list`],
    ['rule not an object', { podSelector: {}, egress: ['a.com'] }, `${P}spec.egress[0] must be an object`],
    ['rule without toFQDNs', { podSelector: {}, egress: [{ ports: [{ port: 1 }] }] }, `${P}spec.egress[0].toFQDNs is required`],
    ['empty toFQDNs', rule({ toFQDNs: [] }), `${P}spec.egress[0].toFQDNs must not be empty`],
    ['toFQDNs not a list', rule({ toFQDNs: { matchName: 'a.com' } }), `${P}spec.egress[0].toFQDNs must be a list`],
    ['unknown rule field', rule({ to: [] }), `${P}spec.egress[0].to: unknown field (allowed: toFQDNs, ports)`],
    ['toFQDNs entry typo', entry({ matchname: 'a.com' }), `${P}spec.egress[0].toFQDNs[1].matchname: unknown field (allowed: matchName, matchPattern)`],
    ['toFQDNs entry extra field', entry({ matchName: 'a.com', port: 443 }), `${P}spec.egress[0].toFQDNs[1].port: unknown field`],
    ['toFQDNs entry empty', entry({}), `${P}spec.egress[0].toFQDNs[1]: set exactly one of matchName and matchPattern`],
    ['toFQDNs entry a string', entry('a.com'), `${P}spec.egress[0].toFQDNs[1] must be an object`],
    ['both matchName and matchPattern', entry({ matchName: 'a.com', matchPattern: '*.a.com' }), `${P}spec.egress[0].toFQDNs[1]: set exactly one of matchName and matchPattern, not both`],
    ['matchName not a string', entry({ matchName: 7 }), `${P}spec.egress[0].toFQDNs[1].matchName must be a string`],
    ['matchPattern not a string', entry({ matchPattern: ['*'] }), `${P}spec.egress[0].toFQDNs[1].matchPattern must be a string`],
    ['matchName empty', entry({ matchName: '' }), `${P}spec.egress[0].toFQDNs[1].matchName: "" is empty`],
    ['matchName with *', entry({ matchName: '*.a.com' }), `${P}spec.egress[0].toFQDNs[1].matchName: "*.a.com" contains '*'; wildcards are only allowed in matchPattern`],
    ['matchName empty label', entry({ matchName: 'a..com' }), `${P}spec.egress[0].toFQDNs[1].matchName: "a..com" has an empty label`],
    ['matchName leading dot', entry({ matchName: '.a.com' }), `${P}spec.egress[0].toFQDNs[1].matchName: ".a.com" has an empty label`],
    ['matchName long label', entry({ matchName: `${'a'.repeat(64)}.com` }), /^FQDNPolicy ci\/p: spec\.egress\[0\]\.toFQDNs\[1\]\.matchName: "a{64}\.com" has a label longer than 63/],
    ['matchName too long', entry({ matchName: `${name253}a` }), /^FQDNPolicy ci\/p: spec\.egress\[0\]\.toFQDNs\[1\]\.matchName: "a+(\.a+)+" is 254 characters long; the limit is 253/],
    ['matchName bad character', entry({ matchName: 'a:b.com' }), `${P}spec.egress[0].toFQDNs[1].matchName: "a:b.com" has a label with characters other than letters, digits, '-', '_' ("a:b")`],
    ['matchName non-ASCII', entry({ matchName: 'bücher.de' }), `${P}spec.egress[0].toFQDNs[1].matchName: "bücher.de" has a label with characters other than`],
    ['matchPattern empty', entry({ matchPattern: '' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "" is empty`],
    ['matchPattern bad character', entry({ matchPattern: 'a?.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "a?.com" has a label with characters other than letters, digits, '-', '_' and '*'`],
    ['matchPattern regex syntax', entry({ matchPattern: '.*\\.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: ".*\\\\.com" has an empty label`],
    ['matchPattern empty label', entry({ matchPattern: '*..com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "*..com" has an empty label`],
    ['matchPattern long label', entry({ matchPattern: `*${'a'.repeat(63)}.com` }), /^FQDNPolicy ci\/p: spec\.egress\[0\]\.toFQDNs\[1\]\.matchPattern: .* has a label longer than 63/],
    ['matchPattern ** in the middle', entry({ matchPattern: 'a.**.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "a.**.com" uses '**' other than as a whole leading label`],
    ['matchPattern ** at the end', entry({ matchPattern: 'example.**' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "example.**" uses '**'`],
    ['matchPattern ** inside a label', entry({ matchPattern: 'a**.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "a**.com" uses '**'`],
    ['matchPattern leading **x', entry({ matchPattern: '**x.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "**x.com" uses '**'`],
    ['matchPattern *** ', entry({ matchPattern: '***.com' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "***.com" uses '**'`],
    ['matchPattern ** alone', entry({ matchPattern: '**' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "**" uses '**'`],
    ['matchPattern **. alone', entry({ matchPattern: '**.' }), `${P}spec.egress[0].toFQDNs[1].matchPattern: "**." uses '**'`],
    ['ports not a list', rule({ ports: { port: 443 } }), `${P}spec.egress[0].ports must be a list`],
    ['port entry not an object', port(443), `${P}spec.egress[0].ports[1] must be an object`],
    ['port missing', port({ protocol: 'TCP' }), `${P}spec.egress[0].ports[1].port is required`],
    ['port typo', port({ port: 443, protcol: 'UDP' }), `${P}spec.egress[0].ports[1].protcol: unknown field (allowed: port, protocol, endPort)`],
    ['named port', port({ port: 'https' }), `${P}spec.egress[0].ports[1].port: named ports ("https") are not allowed in an FQDNPolicy: there is no destination pod to resolve a port name on`],
    ['numeric string port', port({ port: '443' }), `${P}spec.egress[0].ports[1].port must be an integer, not the string "443"`],
    ['port 0', port({ port: 0 }), `${P}spec.egress[0].ports[1].port must be an integer 1-65535`],
    ['port 65536', port({ port: 65536 }), `${P}spec.egress[0].ports[1].port must be an integer 1-65535`],
    ['port fractional', port({ port: 44.3 }), `${P}spec.egress[0].ports[1].port must be an integer 1-65535`],
    ['bad protocol', port({ port: 443, protocol: 'tcp' }), `${P}spec.egress[0].ports[1].protocol must be TCP, UDP or SCTP, not "tcp"`],
    ['ICMP', port({ port: 1, protocol: 'ICMP' }), `${P}spec.egress[0].ports[1].protocol must be TCP, UDP or SCTP`],
    ['endPort below port', port({ port: 443, endPort: 442 }), `${P}spec.egress[0].ports[1].endPort must be an integer from port (443) to 65535`],
    ['endPort above 65535', port({ port: 443, endPort: 65536 }), `${P}spec.egress[0].ports[1].endPort must be an integer from port (443) to 65535`],
    ['endPort a string', port({ port: 443, endPort: '500' }), `${P}spec.egress[0].ports[1].endPort must be an integer`],
    ['error in a later rule', { podSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a.com' }] }, { toFQDNs: [{ matchPattern: 'b.**' }] }] }, `${P}spec.egress[1].toFQDNs[0].matchPattern: "b.**" uses '**'`],
  ];

  it.each(invalid)('rejects %s', (_what, spec, message) => {
    let err: unknown;
    try {
      parse(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe('SLUICE_INVALID_POLICY');
    if (typeof message === 'string') expect((err as Error).message.startsWith(message), `${(err as Error).message}\n  should start with\n${message}`).toBe(true);
    else expect((err as Error).message).toMatch(message);
  });

  it.each([
    ['*'],
    ['*.'],
    ['**.example.com'],
    ['**.*'],
    ['*.*.example.com'],
    ['a*b*c.example.com'],
    ['api-*.example.com'],
    ['_*._tcp.example.com'],
    ['example.com'],
    ['EXAMPLE.*.COM.'],
    [`*${'a'.repeat(62)}.com`],
  ])('accepts matchPattern %j', (p) => {
    expect(() => parse(entry({ matchPattern: p }))).not.toThrow();
  });
});

describe('standalone validation of FQDNPolicy', () => {
  const obj = (spec: unknown) => ({ apiVersion: 'sluice.dev/v1alpha1', kind: 'FQDNPolicy', metadata: { name: 'allow', namespace: 'ci' }, spec });

  it('accepts a valid policy', () => {
    const o = validateObject(obj({ podSelector: {}, egress: [{ toFQDNs: [{ matchPattern: '*.example.com' }] }] }), 'f.yaml');
    expect(o.metadata).toMatchObject({ name: 'allow', namespace: 'ci' });
  });

  it('wraps policy errors in a ValidationError naming the file and field', () => {
    const bad = obj({ podSelector: {}, egress: [{ toFQDNs: [{ matchname: 'a.com' }] }] });
    expect(() => validateObject(bad, 'f.yaml')).toThrow(ValidationError);
    expect(() => validateObject(bad, 'f.yaml')).toThrow('f.yaml: FQDNPolicy ci/allow: spec.egress[0].toFQDNs[0].matchname: unknown field');
    expect(() => validateObject(obj(undefined), 'f.yaml')).toThrow('f.yaml: FQDNPolicy ci/allow: spec is required');
  });
});
