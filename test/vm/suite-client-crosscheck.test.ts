// The host suite client-crosscheck, run through vhsm_transport.ko (see lib/kernel-transports.ts).
import { runHostSuiteOverKernel } from './lib/kernel-transports.js';

await runHostSuiteOverKernel('client-crosscheck');
