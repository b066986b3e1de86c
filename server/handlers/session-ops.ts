/**
 * login and logout.
 */
import type { Handler } from '../context.js';

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
      await ctx.commit(user.resetFailures);
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
