import dns2 from 'dns2';

const { Packet } = dns2;

/** How the loopback DNS server answers one name: TXT records, a server failure, or silence. */
export type DnsZoneEntry = { txt: string[][] } | { fail: 'SERVFAIL' | 'REFUSED' } | { silent: true };

export interface LoopbackDns {
  /** `127.0.0.1:port`, for DNS_SERVERS. */
  server: string;
  zone: Map<string, DnsZoneEntry>;
  /** Every name asked, in order (to see that nothing is asked when nothing should be). */
  asked: string[];
  close(): Promise<void>;
}

const RCODE = { SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/**
 * A real DNS server on loopback (UDP): names in `zone` answer as set, every other name
 * NXDOMAIN. Domain verification in the tests talks DNS to it over the wire.
 */
export async function startLoopbackDns(): Promise<LoopbackDns> {
  const zone = new Map<string, DnsZoneEntry>();
  const asked: string[] = [];
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const question = request.questions[0];
      const name = (question?.name ?? '').toLowerCase();
      asked.push(name);
      const entry = zone.get(name);
      if (entry && 'silent' in entry) return;
      if (!entry) response.header.rcode = RCODE.NXDOMAIN;
      else if ('fail' in entry) response.header.rcode = RCODE[entry.fail];
      else if (question?.type === Packet.TYPE.TXT) {
        for (const data of entry.txt) response.answers.push(Packet.createResourceFromQuestion(question, { ttl: 1, data }));
      }
      void send(response);
    },
  });
  const addresses = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  if (!addresses.udp) throw new Error('the loopback DNS server has no UDP address');
  return { server: `127.0.0.1:${addresses.udp.port}`, zone, asked, close: () => server.close() };
}
