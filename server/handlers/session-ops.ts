/**
 * login and logout.
 */
import type { Handler } from '../context.js';

/**
 * Key pairs stored before public keys were recorded (schema 1) get theirs at
 * their owner's login, the one moment the server can unwrap them; this many
 * per login bounds the time it adds (about 50 µs each).
 */
export const PUBLIC_KEY_BACKFILL_PER_LOGIN = 1000;

export const login: Handler<'login'> = {
  needsSession: false,
  async run(ctx, request) {
    const { sessions, auth } = ctx.services;
    ctx.audit.user = request.username;
    sessions.checkCapacity(ctx.sender); // before paying for a key derivation
    const user = await auth.authenticate({ username: request.username, password: request.password, ctid: ctx.sender.ctid }, (change, result) =>
      ctx.commit(change, result),
    );
    const sessionId = sessions.open(ctx.sender, user, user.authKey);
    try {
      const backfill = await ctx.services.keys.missingPublicKeys(user.userId, user.authKey, PUBLIC_KEY_BACKFILL_PER_LOGIN);
      await ctx.commit(async (tx) => {
        await user.resetFailures(tx);
        for (const { rowId, spki } of backfill) await tx.setPublicKey(rowId, spki);
      });
    } catch (error) {
      sessions.close(sessionId, ctx.sender);
      throw error;
    }
    return { login: { session: sessionId, idleTimeoutMs: sessions.limits.idleTimeoutMs } };
  },
};

export const logout: Handler<'logout'> = {
  needsSession: true,
  async run(ctx, request) {
    ctx.services.sessions.close(request.session!, ctx.sender);
    return { logout: {} };
  },
};
