import { describe, expect, it } from 'vitest';
import { parseAssertions } from './assertions.js';
import { ExplainCode } from './errors.js';

const head = 'apiVersion: sluice.dev/v1alpha1\nkind: Assertions\n';

describe('parseAssertions', () => {
  it('reads every document in order, keeping from, to, port and expect as written, and where each is', () => {
    const text = `${head}assertions:\n- { from: x/a, to: y/b, port: 80/TCP, expect: allow }\n- { from: x/a, to: api.example.com, port: 443, expect: deny }\n---\n---\n${head}assertions:\n- { from: 10.0.0.1, to: 10.0.0.2, port: http, expect: deny }\n`;
    expect(parseAssertions(text, 't.yaml')).toEqual([
      { where: 't.yaml#1 assertion 1', from: 'x/a', to: 'y/b', port: '80/TCP', expect: 'allow' },
      { where: 't.yaml#1 assertion 2', from: 'x/a', to: 'api.example.com', port: 443, expect: 'deny' },
      { where: 't.yaml#3 assertion 1', from: '10.0.0.1', to: '10.0.0.2', port: 'http', expect: 'deny' },
    ]);
    expect(parseAssertions('', 'empty.yaml')).toEqual([]);
  });

  it.each([
    ['a YAML error', 'assertions: [\n', /^t\.yaml#1: /],
    ['another kind', 'apiVersion: v1\nkind: Pod\nassertions: []\n', /^t\.yaml#1: expected apiVersion sluice\.dev\/v1alpha1 and kind Assertions, not "v1" "Pod"$/],
    ['a document that is no object', '- a\n', /^t\.yaml#1: not an object$/],
    ['an unknown field in the document', `${head}assertion: []\n`, /^t\.yaml#1: unknown field "assertion"/],
    ['assertions not a list', `${head}assertions: {}\n`, /^t\.yaml#1: assertions must be a list$/],
    ['a misspelt field', `${head}assertions:\n- { from: x/a, to: y/b, port: 80, expected: allow }\n`, /^t\.yaml#1 assertion 1: unknown field "expected"/],
    ['a missing field', `${head}assertions:\n- { from: x/a, to: y/b, expect: allow }\n`, /^t\.yaml#1 assertion 1: port is required$/],
    ['a verdict that is neither', `${head}assertions:\n- { from: x/a, to: y/b, port: 80, expect: allowed }\n`, /^t\.yaml#1 assertion 1: expect must be allow or deny, not "allowed"$/],
    ['a bad port', `${head}assertions:\n- { from: x/a, to: y/b, port: 80/ICMP, expect: allow }\n`, /^t\.yaml#1 assertion 1: port: "80\/ICMP": the protocol must be TCP, UDP or SCTP$/],
    ['a name as the source', `${head}assertions:\n- { from: example.com, to: y/b, port: 80, expect: allow }\n`, /^t\.yaml#1 assertion 1: from: "example\.com" is not a pod NS\/NAME or an IP address$/],
    ['a second document that is wrong', `${head}assertions: []\n---\n${head}assertions:\n- { from: x/a, to: "not a name!", port: 80, expect: allow }\n`, /^t\.yaml#2 assertion 1: to: /],
  ])('rejects %s, naming the place', (_what, text, message) => {
    expect(() => parseAssertions(text, 't.yaml')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY, message: expect.stringMatching(message) }));
  });
});
