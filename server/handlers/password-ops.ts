/**
 * change_password: the session's user replaces its own password.
 */
import type { Handler } from '../context.js';

export const changePassword: Handler<'changePassword'> = {
  needsSession: true,
  async run(ctx, request) {
    const { session, sender, services } = ctx;
    try {
      await services.auth.changePassword(
        { userId: session.userId, username: session.username, ctid: sender.ctid, oldPassword: request.oldPassword, newPassword: request.newPassword },
        (change, result) => ctx.commit(change, result),
      );
    } finally {
      // Views into the request payload, which the server zeroes too; done here so no later code can read them.
      request.oldPassword.fill(0);
      request.newPassword.fill(0);
    }
    return { changePassword: {} };
  },
};
