import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianTool } from './tools.ts';

/** A private CA, a server certificate it signed and a client certificate, all PEM files. */
export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  remove(): Promise<void>;
}

function runOpenssl(binary: string, args: string[], cwd: string): void {
  const run = spawnSync(binary, args, { cwd, encoding: 'utf8' });
  if (run.error || run.status !== 0)
    throw new Error(`openssl ${args.join(' ')} failed: ${run.stderr ?? run.error?.message}`);
}

/**
 * Generates, with the openssl CLI, certificates valid for a day: a CA, a server certificate
 * for `hosts` (SANs; an IP literal becomes an IP SAN) and a client certificate. EC P-256
 * keys: RSA key generation takes seconds on a loaded machine. `name` tells two CAs apart
 * (an untrusted CA is a second call).
 */
export async function generateCertificates(
  options: { hosts?: string[]; name?: string } = {},
): Promise<TestCertificates> {
  const hosts = options.hosts ?? ['localhost', '127.0.0.1'];
  const name = options.name ?? 'walcache-test';
  const binary = await ensureDebianTool('openssl', { debianPackage: 'openssl', versionArgs: ['version'] });
  const openssl = (args: string[], cwd: string) => runOpenssl(binary, args, cwd);
  const dir = await mkdtemp(join(tmpdir(), 'walcache-certs-'));
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  await writeFile(join(dir, 'server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(
    ['req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', `/CN=${name}-ca`],
    dir,
  );
  for (const [leaf, cn] of [
    ['server', hosts[0] ?? 'localhost'],
    ['client', `${name}-client`],
  ] as const) {
    openssl(['req', ...key, '-keyout', `${leaf}.key`, '-out', `${leaf}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${leaf}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${leaf}.crt`,
        '-days',
        '1',
        '-extfile',
        `${leaf}.ext`,
      ],
      dir,
    );
  }
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
