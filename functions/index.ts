// The package entry ("main"): the Functions host loads this file, and every function file
// registers itself with app.* when imported.
import './telemetry.js';
import './startup.js';
import './platform.js';
import './auth.js';
import './profile.js';
import './users.js';
import './integrations.js';
import './staff.js';
import './orders.js';
import './fhir.js';
import './hl7v2.js';
import './ldt.js';
import './console.js';
import './images.js';
import './exports.js';
import '../orchestrations/export.js';
import './subject-requests.js';
import '../orchestrations/subject-erasure.js';
import './sub-processors.js';
import './compliance.js';
import './breaches.js';
import '../orchestrations/breach.js';
import './backups.js';
import '../orchestrations/backup.js';
import './retention.js';
import '../orchestrations/retention.js';
import './audit.js';
import './approvals.js';

// Last: OPTIONS and the methods no operation serves, for every route of the contract.
import { ALL_OPERATIONS } from '../lib/operations.js';
import { registerAllowedMethods } from './http.js';
registerAllowedMethods(ALL_OPERATIONS);
