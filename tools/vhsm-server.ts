#!/usr/bin/env node
/**
 * vhsm-server: the VHSM daemon. Runs in the VHSM container, registers with
 * vhsm_transport.ko and serves requests until SIGTERM/SIGINT, then stops
 * cleanly (in-flight requests answered, audit flushed, DB closed).
 *
 *   vhsm-server [--config /etc/vhsm/server.json] [--db PATH] [--log-level info]
 *
 * The config file is JSON; command-line flags override it:
 *   {
 *     "db": "/var/lib/vhsm/vhsm.db",    (or "postgres://vhsm_server@db.example/vhsm?sslmode=verify-full")
 *     "dbPasswordFile": "/etc/vhsm/db-password",  (PostgreSQL; else PGPASSWORD or ~/.pgpass; never in the URL)
 *     "dbPoolSize": 10,                 (PostgreSQL connections)
 *     "serverId": "host-17",            (PostgreSQL: this server's audit chain; default the host name)
 *     "sessionIdleTimeoutMs": 900000,
 *     "pbkdf2Iterations": 600000,
 *     "lockout": { "freeAttempts": 3, "backoffBaseMs": 1000, "backoffMaxMs": 300000, "lockAfter": 10 },
 *     "fairness": { "maxInFlight": 1024, "maxInFlightPerContainer": 32, "maxInFlightPerContainerShared": 2,
 *                   "activeWindowMs": 50, "maxQueuedPerContainer": 1024 },
 *     "sessionLimits": { "maxSessions": 10000, "maxSessionsPerContainer": 1000, "maxCachedKeysPerSession": 1000 },
 *     "limits": { "maxKeysPerUser": 10000, "maxCertificatesPerUser": 100 },
 *     "maxConcurrentKdf": 1,            (default: CPU count - 1, at least 1)
 *     "durability": "changes",          (or "all": every reply waits for its audit row's fsync)
 *     "logLevel": "info"
 *   }
 *
 * Logs are JSON lines on stderr, without secrets. Exit codes: 0 clean stop,
 * 1 failure, 2 bad usage/config, 3 storage problem, 9 registration failed.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createJsonLogger, type LogLevel, type Logger } from '../server/log.js';
import type { Durability } from '../server/group-commit.js';
import { VhsmServer, type VhsmServerOptions } from '../server/server.js';
import { StorageError } from '../server/storage.js';
import { describePostgresUrl, isPostgresUrl } from '../server/pg/store.js';
import type { ServerTransport } from '../transport/types.js';
import { EXIT, EXIT_CODES_HELP, ToolError } from './common/exit-codes.js';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

interface ServerConfig {
  db?: string;
  dbPasswordFile?: string;
  dbPoolSize?: number;
  serverId?: string;
  sessionIdleTimeoutMs?: number;
  pbkdf2Iterations?: number;
  lockout?: Record<string, number>;
  fairness?: Record<string, number>;
  sessionLimits?: Record<string, number>;
  limits?: Record<string, number>;
  maxConcurrentKdf?: number;
  durability?: Durability;
  logLevel?: LogLevel;
}

const DURABILITIES: readonly Durability[] = ['changes', 'all'];

const NUMERIC_GROUPS: Record<string, readonly string[]> = {
  lockout: ['freeAttempts', 'backoffBaseMs', 'backoffMaxMs', 'lockAfter'],
  fairness: ['maxInFlight', 'maxInFlightPerContainer', 'maxInFlightPerContainerShared', 'activeWindowMs', 'maxQueuedPerContainer'],
  sessionLimits: ['maxSessions', 'maxSessionsPerContainer', 'maxCachedKeysPerSession'],
  limits: ['maxKeysPerUser', 'maxCertificatesPerUser'],
};
const TOP_LEVEL = ['db', 'dbPasswordFile', 'dbPoolSize', 'serverId', 'sessionIdleTimeoutMs', 'pbkdf2Iterations', 'maxConcurrentKdf', 'durability', 'logLevel', ...Object.keys(NUMERIC_GROUPS)];

const usage = (message: string): ToolError => new ToolError(EXIT.USAGE, message);

function positiveInteger(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw usage(`${where} must be a non-negative integer`);
  return value;
}

/** Reads and checks the config file: unknown keys and wrong types are errors, not silently ignored. */
function readConfig(path: string): ServerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw usage(`cannot read config ${path}: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw usage(`${path} must hold a JSON object`);
  const config = raw as Record<string, unknown>;
  for (const key of Object.keys(config)) if (!TOP_LEVEL.includes(key)) throw usage(`${path}: unknown setting ${key}`);
  if (config.db !== undefined && typeof config.db !== 'string') throw usage(`${path}: db must be a string`);
  if (config.dbPasswordFile !== undefined && typeof config.dbPasswordFile !== 'string') throw usage(`${path}: dbPasswordFile must be a string`);
  if (config.serverId !== undefined && (typeof config.serverId !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(config.serverId))) {
    throw usage(`${path}: serverId is 1..64 of [A-Za-z0-9_.:-]`);
  }
  if (config.logLevel !== undefined && !LOG_LEVELS.includes(config.logLevel as LogLevel)) throw usage(`${path}: logLevel is one of ${LOG_LEVELS.join(', ')}`);
  if (config.durability !== undefined && !DURABILITIES.includes(config.durability as Durability)) {
    throw usage(`${path}: durability is one of ${DURABILITIES.join(', ')}`);
  }
  for (const key of ['sessionIdleTimeoutMs', 'pbkdf2Iterations', 'maxConcurrentKdf', 'dbPoolSize']) {
    if (config[key] !== undefined) positiveInteger(config[key], `${path}: ${key}`);
  }
  for (const [group, fields] of Object.entries(NUMERIC_GROUPS)) {
    const value = config[group];
    if (value === undefined) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usage(`${path}: ${group} must be an object`);
    for (const [field, number] of Object.entries(value)) {
      if (!fields.includes(field)) throw usage(`${path}: unknown setting ${group}.${field}`);
      positiveInteger(number, `${path}: ${group}.${field}`);
    }
  }
  return config as ServerConfig;
}

async function registerTransport(): Promise<ServerTransport> {
  // Loaded lazily: the netlink transport needs the native addon, which nothing else here does.
  const { registerNetlinkServer } = await import('../transport/netlink-server.js');
  try {
    return await registerNetlinkServer();
  } catch (error) {
    throw new ToolError(EXIT.TRANSPORT, `cannot register with vhsm_transport: ${(error as Error).message}`);
  }
}

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('vhsm-server')
    .usage('$0 [options]\n\nThe VHSM server. Stops cleanly on SIGTERM or SIGINT.')
    .option('config', { type: 'string', describe: 'JSON config file' })
    .option('db', { type: 'string', describe: 'DB file or postgres:// URL without a password (default: config, $VHSM_DB, /var/lib/vhsm/vhsm.db)' })
    .option('db-password-file', { type: 'string', describe: 'PostgreSQL: file holding the password (else PGPASSWORD or ~/.pgpass)' })
    .option('server-id', { type: 'string', describe: "PostgreSQL: this server's audit chain, unique per server (default: the host name)" })
    .option('session-idle-ms', { type: 'number', describe: 'session idle timeout' })
    .option('pbkdf2-iterations', { type: 'number', describe: 'PBKDF2 cost of rejecting an unknown user (and the least a password change derives with); match vhsm-admin user add --iterations (default 600000)' })
    .option('log-level', { choices: LOG_LEVELS, describe: 'minimum log level (default info)' })
    .strict()
    .epilogue(EXIT_CODES_HELP)
    .fail((message, error) => {
      throw error ?? usage(message);
    })
    .help()
    .parseAsync();

  const config = args.config ? readConfig(args.config) : {};
  const logger: Logger = createJsonLogger(process.stderr, (args.logLevel as LogLevel | undefined) ?? config.logLevel ?? 'info');
  const options: VhsmServerOptions = {
    storagePath: args.db ?? config.db ?? process.env.VHSM_DB ?? '/var/lib/vhsm/vhsm.db',
    ...((args.dbPasswordFile ?? config.dbPasswordFile) !== undefined && { storagePasswordFile: (args.dbPasswordFile ?? config.dbPasswordFile)! }),
    ...(config.dbPoolSize !== undefined && { storagePoolSize: config.dbPoolSize }),
    ...((args.serverId ?? config.serverId) !== undefined && { serverId: (args.serverId ?? config.serverId)! }),
    ...(config.sessionIdleTimeoutMs !== undefined && { sessionIdleTimeoutMs: config.sessionIdleTimeoutMs }),
    ...(args.sessionIdleMs !== undefined && { sessionIdleTimeoutMs: positiveInteger(args.sessionIdleMs, '--session-idle-ms') }),
    ...(config.pbkdf2Iterations !== undefined && { pbkdf2Iterations: config.pbkdf2Iterations }),
    ...(args.pbkdf2Iterations !== undefined && { pbkdf2Iterations: positiveInteger(args.pbkdf2Iterations, '--pbkdf2-iterations') }),
    ...(config.lockout && { lockout: config.lockout }),
    ...(config.fairness && { fairness: config.fairness }),
    ...(config.sessionLimits && { sessionLimits: config.sessionLimits }),
    ...(config.limits && { limits: config.limits }),
    ...(config.maxConcurrentKdf !== undefined && { maxConcurrentKdf: config.maxConcurrentKdf }),
    ...(config.durability !== undefined && { durability: config.durability }),
    logger,
  };

  let server: VhsmServer;
  try {
    server = await VhsmServer.open(options);
  } catch (error) {
    if (error instanceof RangeError) throw usage(error.message);
    throw error;
  }
  let transport: ServerTransport;
  try {
    transport = await registerTransport();
  } catch (error) {
    await server.stop();
    throw error;
  }
  server.serve(transport);
  logger.log('info', 'vhsm-server started', { db: isPostgresUrl(options.storagePath) ? describePostgresUrl(options.storagePath) : options.storagePath, pid: process.pid });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.log('warn', 'second signal: exiting without a clean stop', { signal });
      process.exit(EXIT.FAILURE);
    }
    stopping = true;
    logger.log('info', 'signal received, stopping', { signal });
    server.stop().then(
      () => process.exit(EXIT.OK),
      (error: unknown) => {
        logger.log('error', 'unclean stop', { error: (error as Error).message });
        process.exit(EXIT.FAILURE);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  await main();
} catch (error) {
  const code = error instanceof ToolError ? error.exitCode : error instanceof StorageError ? EXIT.STORAGE : EXIT.FAILURE;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', message: (error as Error).message ?? String(error) })}\n`);
  process.exitCode = code;
}
