// Every operation of the identity domain, one contract file per area.
import { authOperations } from './auth.js';
import { integrationsOperations } from './integrations.js';
import { profileOperations } from './profile.js';
import { rolesOperations } from './roles.js';
import { staffOperations } from './staff.js';
import { usersOperations } from './users.js';

export const identityOperations = [
  ...authOperations,
  ...profileOperations,
  ...usersOperations,
  ...rolesOperations,
  ...integrationsOperations,
  ...staffOperations,
];
