import { describe, expect, it } from 'vitest';
import { AppError } from '../../kernel/errors.js';
import { checkDestinationUrl, classifyAddress, classifyHostname, inspectDestinationUrl, isAllowed, type AddressKind } from './destination.js';

const dev = { allowLoopback: true, requireHttps: false };
const prod = { allowLoopback: false, requireHttps: false };

describe('classifyAddress: IPv4', () => {
  it.each<[string, AddressKind]>([
    ['0.0.0.0', 'unspecified'],
    ['0.255.255.255', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['100.100.100.200', 'metadata'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
  ])('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });

  it.each(['1.1.1.1', '8.8.8.8', '93.184.215.14', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '169.253.255.255', '198.17.255.255', '198.20.0.0', '223.255.255.255', '11.0.0.1'])(
    '%s is public (just outside the ranges)',
    (ip) => {
      expect(classifyAddress(ip)).toBe('public');
    },
  );

  it.each(['127.1', '0x7f.0.0.1', '0177.0.0.1', '2130706433', '010.0.0.1', '1.2.3', '256.1.1.1', '', 'example.com', '1.1.1.1%eth0'])(
    'refuses the non-canonical or invalid spelling %j',
    (ip) => {
      expect(classifyAddress(ip)).toBe('reserved');
    },
  );
});

describe('classifyAddress: IPv6', () => {
  it.each<[string, AddressKind]>([
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2::23', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['ff05::2', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['2001::1', 'reserved'], // Teredo
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
    ['2001:2::1', 'reserved'], // benchmarking
    ['3fff::1', 'reserved'], // documentation (RFC 9637)
    ['100::1', 'reserved'], // discard-only
    ['5f00::1', 'reserved'], // SRv6 SIDs, outside 2000::/3
    ['64:ff9b:1::a00:1', 'reserved'], // local-use NAT64
    ['::ffff:0:a00:1', 'reserved'], // SIIT IPv4-translated
    ['4000::1', 'reserved'], // unassigned
  ])('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });

  it.each(['2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001::1', '2c0f:fb50::1'])('%s is public', (ip) => {
    expect(classifyAddress(ip)).toBe('public');
  });

  it('refuses a zone on a global address and malformed text', () => {
    expect(classifyAddress('2606:4700::1%eth0')).toBe('reserved');
    expect(classifyAddress('::ffff:127.1')).toBe('reserved');
    expect(classifyAddress('1::2::3')).toBe('reserved');
    expect(classifyAddress('[::1]')).toBe('reserved');
  });
});

describe('classifyAddress: IPv6 forms carrying IPv4', () => {
  it.each<[string, string, AddressKind]>([
    ['mapped', '::ffff:127.0.0.1', 'loopback'],
    ['mapped (hex)', '::ffff:7f00:1', 'loopback'],
    ['mapped', '::ffff:10.0.0.1', 'private'],
    ['mapped', '::ffff:169.254.169.254', 'metadata'],
    ['mapped', '::ffff:a9fe:a9fe', 'metadata'],
    ['mapped', '::ffff:0.0.0.0', 'unspecified'],
    ['mapped', '::ffff:8.8.8.8', 'public'],
    ['NAT64', '64:ff9b::127.0.0.1', 'loopback'],
    ['NAT64', '64:ff9b::a9fe:a9fe', 'metadata'],
    ['NAT64', '64:ff9b::c0a8:101', 'private'],
    ['NAT64', '64:ff9b::808:808', 'public'],
    ['6to4', '2002:7f00:1::1', 'loopback'],
    ['6to4', '2002:a00:1::', 'private'],
    ['6to4', '2002:a9fe:a9fe::1', 'metadata'],
    ['6to4', '2002:e000:1::', 'multicast'],
    ['6to4', '2002:808:808::1', 'public'],
    ['IPv4-compatible', '::127.0.0.1', 'loopback'],
    ['IPv4-compatible', '::a00:1', 'private'],
    ['IPv4-compatible', '::169.254.169.254', 'metadata'],
    ['IPv4-compatible (public embedded, deprecated form)', '::8.8.8.8', 'reserved'],
  ])('%s %s is %s', (_form, ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });
});

describe('isAllowed', () => {
  const kinds: AddressKind[] = ['public', 'loopback', 'private', 'link-local', 'multicast', 'metadata', 'reserved', 'unspecified'];
  it('allows public always, loopback only with the opt-in, nothing else', () => {
    expect(kinds.filter((k) => isAllowed(k, false))).toEqual(['public']);
    expect(kinds.filter((k) => isAllowed(k, true))).toEqual(['public', 'loopback']);
  });
});

describe('classifyHostname', () => {
  it.each<[string, AddressKind | null]>([
    ['localhost', 'loopback'],
    ['LOCALHOST', 'loopback'],
    ['localhost.', 'loopback'],
    ['api.localhost', 'loopback'],
    ['localhost.localdomain', 'loopback'],
    ['metadata.google.internal', 'metadata'],
    ['metadata.google.internal.', 'metadata'],
    ['metadata', 'metadata'],
    ['instance-data.ec2.internal', 'metadata'],
    ['db.corp.internal', 'private'],
    ['printer.local', 'private'],
    ['nas.home.arpa', 'private'],
    ['jenkins', 'private'],
    ['hooks.example.com', null],
    ['example.com.', null],
    ['localhost.example.com', null],
  ])('%s → %s', (name, kind) => {
    expect(classifyHostname(name)).toBe(kind);
  });
});

describe('checkDestinationUrl', () => {
  const refusedWith = (raw: string, opts = prod): string => {
    try {
      checkDestinationUrl(raw, opts);
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('validation_failed');
      return (err as AppError).detail ?? '';
    }
    throw new Error(`accepted ${raw}`);
  };

  it('accepts an ordinary https URL and returns it parsed', () => {
    const u = checkDestinationUrl('https://hooks.example.com:8443/in?x=1', { allowLoopback: false, requireHttps: true });
    expect(u.hostname).toBe('hooks.example.com');
    expect(u.port).toBe('8443');
    expect(checkDestinationUrl('http://8.8.8.8/', prod).hostname).toBe('8.8.8.8');
    expect(checkDestinationUrl('http://[2606:4700:4700::1111]/', prod).hostname).toBe('[2606:4700:4700::1111]');
  });

  it.each<[string, string]>([
    ['not a url', 'invalid url'],
    ['ftp://example.com/', 'url must use http or https'],
    ['file:///etc/passwd', 'url must use http or https'],
    ['javascript:alert(1)', 'url must use http or https'],
    ['gopher://example.com/', 'url must use http or https'],
    ['https://user:pw@example.com/', 'url must not contain credentials'],
    ['https://user@example.com/', 'url must not contain credentials'],
    ['https://example.com/#frag', 'url must not contain a fragment'],
    ['https://example.com/#', 'url must not contain a fragment'],
    ['https://example.com:0/', 'port out of range'],
    ['https://example.com:65536/', 'invalid url'],
    [`https://example.com/${'a'.repeat(2048)}`, 'url too long'],
  ])('refuses %j: %s', (raw, reason) => {
    expect(refusedWith(raw)).toBe(reason);
  });

  it('refuses plain http when https is required', () => {
    expect(refusedWith('http://example.com/', { allowLoopback: false, requireHttps: true })).toBe('url must use https');
  });

  it('counts the length after normalisation (percent-encoding grows a URL)', () => {
    const raw = `https://example.com/${' '.repeat(700)}x`;
    expect(raw.length).toBeLessThan(2048);
    expect(refusedWith(raw)).toBe('url too long');
  });

  it.each<[string, AddressKind]>([
    ['http://127.0.0.1/', 'loopback'],
    ['http://127.0.0.1./', 'loopback'],
    ['http://2130706433/', 'loopback'],
    ['http://0x7f.1/', 'loopback'],
    ['http://0x7f000001/', 'loopback'],
    ['http://0177.0.0.1/', 'loopback'],
    ['http://127.1/', 'loopback'],
    ['http://%31%32%37.0.0.1/', 'loopback'],
    ['http://[::1]/', 'loopback'],
    ['http://[0:0:0:0:0:0:0:1]/', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'loopback'],
    ['http://[::ffff:7f00:1]/', 'loopback'],
    ['http://localhost:8080/', 'loopback'],
    ['http://LocalHost./', 'loopback'],
    ['http://evil.localhost/', 'loopback'],
    ['http://0/', 'unspecified'],
    ['http://0.0.0.0/', 'unspecified'],
    ['http://[::]/', 'unspecified'],
    ['http://10.0.0.1/', 'private'],
    ['http://012.0.0.1/', 'private'],
    ['http://167772161/', 'private'],
    ['http://192.168.0.1/', 'private'],
    ['http://[fd00::1]/', 'private'],
    ['http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['http://0xa9.0xfe.0xa9.0xfe/', 'metadata'],
    ['http://2852039166/', 'metadata'],
    ['http://[::ffff:169.254.169.254]/', 'metadata'],
    ['http://[64:ff9b::a9fe:a9fe]/', 'metadata'],
    ['http://[fd00:ec2::254]/', 'metadata'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
    ['http://[fe80::1]/', 'link-local'],
    ['http://224.0.0.1/', 'multicast'],
    ['http://[ff02::1]/', 'multicast'],
    ['http://255.255.255.255/', 'reserved'],
    ['http://[2001:db8::1]/', 'reserved'],
  ])('refuses %s as %s', (raw, kind) => {
    expect(refusedWith(raw)).toMatch(new RegExp(`^destination refused: ${kind}( \\(a development server allows it with PALISADE_WEBHOOKS_ALLOW_LOOPBACK=true\\))?$`));
  });

  it('lets loopback through only with the development opt-in, nothing else', () => {
    for (const raw of ['http://127.0.0.1:9/', 'http://[::1]:9/', 'http://2130706433/', 'http://localhost/', 'http://a.localhost/']) {
      expect(() => checkDestinationUrl(raw, dev)).not.toThrow();
    }
    for (const raw of ['http://10.0.0.1/', 'http://169.254.169.254/', 'http://metadata.google.internal/', 'http://0.0.0.0/']) {
      expect(() => checkDestinationUrl(raw, dev)).toThrow(AppError);
    }
  });

  it('tells the transport whether the host is an IP literal (no DNS) and strips IPv6 brackets', () => {
    const v6 = inspectDestinationUrl('http://[2606:4700:4700::1111]:8080/x', prod);
    expect(v6).toMatchObject({ ok: true, host: '2606:4700:4700::1111', literal: true });
    expect(inspectDestinationUrl('https://hooks.example.com/', prod)).toMatchObject({ ok: true, host: 'hooks.example.com', literal: false });
    expect(inspectDestinationUrl('http://10.1/', prod)).toMatchObject({ ok: false, refused: 'private' });
  });
});
