/**
 * Public surface of the server package.
 */
export { VhsmServer, type VhsmServerOptions, type VhsmServerStats } from './server.js';
export { Store, StorageError, checkFileSafety, SCHEMA_VERSION, type OpenStoreOptions } from './storage.js';
export { DEFAULT_PBKDF2_ITERATIONS } from './kdf.js';
export { DEFAULT_LOCKOUT_POLICY, type LockoutPolicy } from './lockout.js';
export { DEFAULT_FAIRNESS, type FairnessOptions } from './fairness.js';
export { DEFAULT_SESSION_LIMITS } from './sessions.js';
export { createUser, changePassword, deleteUser, allowContainers, denyContainers, unlockUser, listUsers, UserError } from './users.js';
export { verifyAuditChain, readAuditRows, appendAuditRows, type AuditRecord, type AuditVerifyReport } from './audit.js';
export { createJsonLogger, silentLogger, type Logger, type LogLevel } from './log.js';
