import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Session, User } from '../api/types';
import { SESSION_STATES } from './sessions';

// The type assertions are checked by `npm run typecheck`: they fail if the API declares a
// session state or a role as a plain string again (Session and User are the generated types).
describe('session states and roles come from the API types', () => {
  it('has every session state, in lifecycle order', () => {
    expectTypeOf<Session['state']>().toEqualTypeOf<
      'pending' | 'starting' | 'running' | 'hibernating' | 'hibernated' | 'waking' | 'terminating' | 'terminated' | 'failed'
    >();
    expect(SESSION_STATES).toEqual([
      'pending',
      'starting',
      'running',
      'hibernating',
      'hibernated',
      'waking',
      'terminating',
      'terminated',
      'failed',
    ]);
  });

  it('has both roles', () => {
    expectTypeOf<User['role']>().toEqualTypeOf<'admin' | 'user'>();
  });
});
